"""Running an evaluation: questions x modes through one SearchAgent, one committed SQLite row per finished question.

A run is resumable at any point: the rows already in `eval_result` are the finished questions; `resume` asks only
the others (the (run, mode, question) unique key makes a double write impossible). Questions are scheduled
question-major (every mode of question 1, then of question 2, ...) so a partial run compares modes on the same
questions.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.types import MODES as AGENT_MODES
from eval.datasets import Dataset, Example, load_dataset
from eval.errors import EvalError, RunConfigError, TooManyErrorsError
from eval.evidence import (RecordingProvider, ReplayProvider, Snapshot, recording_factory, replay_factory,
                           web_documents)
from eval.scoring import aggregate, score_answer
from eval.settings import EvalSettings
from eval.store import EvalResult, EvalRun, Store, dumps, model_identity
from moesearch_core.errors import render_error

MODES = tuple(reversed(AGENT_MODES))  # the agent's modes, cheapest first: the order runs and reports list them
PROVIDERS = ("auto", "localweb", "searxng", "local")


@dataclass
class RunOptions:
    """Everything that defines a run (stored with it, so `--resume` continues exactly the same run)."""

    dataset: str = "hotpotqa-dev"
    modes: list[str] = field(default_factory=lambda: ["quick"])
    model: str = "embedded"
    limit: int | None = None
    concurrency: int = 1
    provider: str = "auto"  # auto: the dataset's local web when it has contexts, else the retrieval settings
    searxng_url: str | None = None
    replay: str | None = None  # a snapshot path: serve exactly its evidence, offline
    record: bool = True  # write a snapshot of the evidence used
    on_bad_line: str = "skip"
    agent: dict[str, Any] = field(default_factory=dict)  # AgentSettings overrides, e.g. {"deadline_s": 120}

    def validate(self) -> "RunOptions":
        self.modes = list(dict.fromkeys(m.strip() for m in self.modes if m and m.strip()))
        bad = [m for m in self.modes if m not in MODES]
        if not self.modes or bad:
            raise RunConfigError(f"unknown mode {bad[0]!r}; use one or more of {', '.join(MODES)}" if bad
                                 else f"no mode given; use one or more of {', '.join(MODES)}")
        if self.limit is not None and self.limit < 1:
            raise RunConfigError("--limit must be at least 1")
        if self.concurrency < 1:
            raise RunConfigError("--concurrency must be at least 1")
        if self.provider not in PROVIDERS:
            raise RunConfigError(f"unknown provider {self.provider!r}; use one of {', '.join(PROVIDERS)}")
        if self.on_bad_line not in ("skip", "stop"):
            raise RunConfigError("--on-bad-line must be skip or stop")
        return self

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RunOptions":
        known = {k: v for k, v in config.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class RunSummary:
    run_id: str
    status: str
    scored: int  # result rows in the run (all modes)
    expected: int  # questions x modes
    metrics: dict[str, dict[str, Any]]
    snapshot: str | None = None
    problems: list[str] = field(default_factory=list)  # malformed dataset lines skipped
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "scored": self.scored, "metrics": self.metrics}


class QuestionFailed(Exception):
    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        self.exit_code = exit_code


class _NoRetrieval:
    """Closed-book only runs: the agent gets a provider and a fetcher that never reach anything."""

    name = "none"

    async def asearch(self, query: str, k: int = 5, **_: Any) -> Any:
        return self.search(query, k)

    def search(self, query: str, k: int = 5, **_: Any) -> Any:
        from eval.evidence import _build, _retrieval_types

        return _build(_retrieval_types()["SearchResult"], {"hits": [], "warnings": ["closed-book run"]})

    async def aclose(self) -> None:
        return None


# ------------------------------------------------------------------------------------------------------ the run
def run_eval(options: RunOptions | None = None, *, resume: str | None = None, llm: Any = None,
             settings: EvalSettings | None = None, progress: bool = False, time_limit_s: float | None = None,
             command: str = "", given: dict[str, Any] | None = None) -> RunSummary:
    """Run (or resume) an evaluation and return its summary; see `arun_eval`. Safe to call from a notebook."""
    coro_args = dict(options=options, resume=resume, llm=llm, settings=settings, progress=progress,
                     time_limit_s=time_limit_s, command=command, given=given)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun_eval(**coro_args))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["v"] = asyncio.run(arun_eval(**coro_args))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["e"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["v"]


def _resolve_options(store: Store, options: RunOptions | None, resume: str | None,
                     given: dict[str, Any] | None) -> tuple[RunOptions, EvalRun | None]:
    if resume is None:
        return (options or RunOptions()).validate(), None
    run = store.get_run(resume)
    stored = RunOptions.from_config(run.config_dict)
    for key, value in (given or {}).items():
        if value is None or key not in RunOptions.__dataclass_fields__:
            continue
        if getattr(stored, key) != value:
            raise RunConfigError(f"run {run.id} was started with {key}={getattr(stored, key)!r}, not {value!r}; "
                                 "resume it without that option or start a new run")
    return stored.validate(), run


async def arun_eval(options: RunOptions | None = None, *, resume: str | None = None, llm: Any = None,
                    settings: EvalSettings | None = None, progress: bool = False,
                    time_limit_s: float | None = None, command: str = "",
                    given: dict[str, Any] | None = None) -> RunSummary:
    """Run the questions of `options` (or the unfinished ones of run `resume`) and store one row per question.

    `llm`: an already loaded model (else `options.model` is loaded once). `time_limit_s`: stop starting new
    questions after this many seconds (the run stays resumable). `given`: the options the user set explicitly when
    resuming; each must agree with the stored run.
    """
    settings = settings or EvalSettings()
    store = Store(settings=settings)
    opts, run = _resolve_options(store, options, resume, given)
    dataset = load_dataset(opts.dataset, on_bad_line=opts.on_bad_line)  # type: ignore[arg-type]
    problems = [str(p) for p in dataset.problems]
    examples = dataset.head(opts.limit)
    run = _open_run(store, opts, run, dataset, len(examples), settings, command)
    done = store.done_keys(run.id)
    job = _Job(store, run.id, opts, settings,
               pending=[(i, ex, mode) for i, ex in enumerate(examples) for mode in opts.modes
                        if (mode, ex.id) not in done],
               expected=len(examples) * len(opts.modes), already=len(done), wall_base=run.wall_s,
               progress=progress, time_limit_s=time_limit_s)
    if not job.pending:
        store.update_run(run.id, status="done")
    else:
        await _run_pending(job, run, dataset, llm)
    return _summary(store, run.id, job.expected, problems, settings)


def _open_run(store: Store, opts: RunOptions, run: EvalRun | None, dataset: Dataset, n_questions: int,
              settings: EvalSettings, command: str) -> EvalRun:
    """A new run's row (with where its evidence snapshot goes), or the resumed run after checking its dataset."""
    if run is not None:
        if run.dataset_sha256 and run.dataset_sha256 != dataset.sha256:
            raise RunConfigError(f"the dataset {opts.dataset} changed since run {run.id} started; start a new run")
        return run
    run_id = store.new_run_id()
    snap_path = None
    if opts.replay:
        snap_path = str(Path(opts.replay).expanduser().resolve())
    elif opts.record and any(m != "closed-book" for m in opts.modes):
        snap_path = str(settings.data_dir / "eval" / "snapshots" / f"{run_id}.jsonl")
    return store.create_run(EvalRun(
        id=run_id, dataset=opts.dataset, dataset_sha256=dataset.sha256, modes=dumps(opts.modes),
        model=opts.model, limit=opts.limit, n_questions=n_questions, concurrency=opts.concurrency,
        provider="replay" if opts.replay else opts.provider, snapshot=snap_path, config=dumps(asdict(opts)),
        command=command))


async def _run_pending(job: "_Job", run: EvalRun, dataset: Dataset, llm: Any) -> None:
    """Ask the job's pending questions; the run's status, error and wall time are stored however it ends."""
    store = job.store
    store.update_run(run.id, status="running", error=None)
    status, error_text = "interrupted", None
    try:
        config = run.config_dict

        def remember_port(port: int) -> None:  # a resumed run serves its local web at the same URLs
            if port and config.get("web_port") != port:
                config["web_port"] = port
                store.update_run(run.id, config=dumps(config))

        async with _evidence(job.opts, dataset, run.snapshot, config.get("web_port"), remember_port) as (
                provider, factory, rsettings, page_texts):
            await _with_model(job, llm, provider, factory, rsettings, page_texts)
        status = "done" if store.count(run.id) >= job.expected else "interrupted"
    except TooManyErrorsError as e:
        error_text = str(e)
        raise
    except EvalError as e:
        error_text = str(e)
        status = "failed"
        raise
    except BaseException as e:  # interrupted (Ctrl-C) or a bug: the run stays resumable
        error_text = f"{type(e).__name__}: {e}".rstrip(": ")
        raise
    finally:
        store.update_run(run.id, status=status, error=error_text, wall_s=job.wall_s())


async def _with_model(job: "_Job", llm: Any, provider: Any, factory: Any, rsettings: Any,
                      page_texts: dict[str, str] | None) -> None:
    """Load the run's model unless one was given, ask every pending question, close the model if it is ours."""
    owned_llm = llm is None
    if owned_llm:
        from model_runtime import load_llm
        from model_runtime.settings import ModelSettings

        llm = load_llm(ModelSettings(model=job.opts.model))
    if getattr(llm, "name", None):
        job.store.update_run(job.run_id, **model_identity(llm))
    finished = False
    try:
        await _ask_all(job, _make_agent(job.opts, llm, provider, factory, rsettings), page_texts)
        finished = True
    finally:
        # Close the model only when no question is still generating: an interrupted run (Ctrl-C) may leave
        # a generation thread inside llama.cpp, and freeing the model under it crashes the process.
        if owned_llm and finished:
            with contextlib.suppress(Exception):
                llm.close()


def _summary(store: Store, run_id: str, expected: int, problems: list[str], settings: EvalSettings) -> RunSummary:
    run = store.get_run(run_id)
    rows = store.results(run_id)
    return RunSummary(run_id, run.status, len(rows), expected, aggregate(rows, resamples=settings.eval_bootstrap),
                      run.snapshot, problems, run.wall_s)


@contextlib.asynccontextmanager
async def _evidence(opts: RunOptions, dataset: Dataset, snapshot_path: str | None, port_hint: int | None = None,
                    on_port: Any = None):
    """(provider, fetcher_factory, retrieval_settings, page_texts) for the run's evidence source."""
    page_texts = dict(dataset.paragraphs()) if dataset.has_context else None
    if opts.replay:
        snap = Snapshot.open_for_replay(opts.replay)
        yield ReplayProvider(snap), replay_factory(snap), None, page_texts
        return
    if all(m == "closed-book" for m in opts.modes):
        yield _NoRetrieval(), None, None, None
        return
    from retrieval import Fetcher, make_provider

    kind = opts.provider
    if kind == "auto":
        kind = "localweb" if dataset.has_context else "settings"
    with contextlib.ExitStack() as stack:
        rsettings = _retrieval_settings(kind, opts, dataset, stack, port_hint, on_port)
        if kind != "localweb":
            page_texts = None
        provider = make_provider(rsettings)

        def factory() -> Any:
            return Fetcher(rsettings)

        snap = Snapshot(snapshot_path) if snapshot_path and opts.record else None
        try:
            if snap is not None:
                yield RecordingProvider(provider, snap), recording_factory(factory, snap), rsettings, page_texts
            else:
                yield provider, factory, rsettings, page_texts
        finally:
            with contextlib.suppress(Exception):
                await provider.aclose()
            if snap is not None:
                snap.close()


def _retrieval_settings(kind: str, opts: RunOptions, dataset: Dataset, stack: contextlib.ExitStack,
                        port_hint: int | None, on_port: Any) -> Any:
    """RetrievalSettings for the provider kind; "localweb" starts the dataset's local web (closed with `stack`)."""
    from retrieval import RetrievalSettings

    if kind == "localweb":
        if not dataset.has_context:
            raise RunConfigError(f"dataset {dataset.name} has no context paragraphs to serve as a local web; "
                                 "use --provider searxng or local")
        from retrieval import LocalWeb

        docs = web_documents(dataset)
        try:
            web = stack.enter_context(LocalWeb(docs, port=int(port_hint or 0)))
        except OSError:  # the previous port is taken now
            web = stack.enter_context(LocalWeb(docs))
        if on_port is not None:
            on_port(urlsplit(web.search_url).port or 0)
        return RetrievalSettings(search_provider="searxng", searxng_url=web.search_url)
    if kind == "searxng":
        return (RetrievalSettings(search_provider="searxng", searxng_url=opts.searxng_url)
                if opts.searxng_url else RetrievalSettings(search_provider="searxng"))
    if kind == "local":
        return RetrievalSettings(search_provider="local")
    return RetrievalSettings()


async def _answer(agent: Any, question: str, mode: str) -> Any:
    """The agent's Answer; the agent's error event becomes QuestionFailed (its one-line message and exit code)."""
    from agent.types import AnswerReady, ErrorRaised

    astream = getattr(agent, "astream", None)
    if astream is None:
        return await asyncio.to_thread(agent.ask, question, mode=mode)
    answer, error = None, None
    async for ev in astream(question, mode=mode):
        if isinstance(ev.data, AnswerReady):
            answer = ev.data.answer
        elif isinstance(ev.data, ErrorRaised):
            exc, msg = ev.data.exception, ev.data.message or "the agent reported an error"
            error = QuestionFailed(f"{type(exc).__name__}: {msg}" if exc is not None else msg, ev.data.exit_code)
    if answer is None:
        raise error or QuestionFailed("the agent finished without an answer")
    return answer


@dataclass
class _Job:
    """The questions still to ask in one run, and its progress: running EM/F1 per mode, failures in a row."""

    store: Store
    run_id: str
    opts: RunOptions
    settings: EvalSettings
    pending: list[tuple[int, Example, str]]
    expected: int
    already: int
    wall_base: float
    progress: bool = False
    time_limit_s: float | None = None
    started: float = field(default_factory=time.monotonic)
    running: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: {"em": [], "f1": []}))
    consecutive: int = 0
    last_error: str = ""
    bar: Any = None

    def wall_s(self) -> float:
        return self.wall_base + time.monotonic() - self.started

    def record(self, result: EvalResult) -> None:
        """Store one question's row and show the running scores."""
        if self.store.add_result(result):
            self.running[result.mode]["em"].append(result.em)
            self.running[result.mode]["f1"].append(result.f1)
        self.store.update_run(self.run_id, wall_s=self.wall_s())
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str("  ".join(
                f"{m} EM {100 * sum(v['em']) / len(v['em']):.1f} F1 {100 * sum(v['f1']) / len(v['f1']):.1f}"
                for m, v in self.running.items() if v["em"]))

    def open_progress(self) -> None:
        for r in self.store.results(self.run_id):
            self.running[r.mode]["em"].append(r.em)
            self.running[r.mode]["f1"].append(r.f1)
        if self.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=self.expected, initial=self.already, file=sys.stderr, unit="q",
                            dynamic_ncols=True, desc=f"eval {self.run_id}")


def _make_agent(opts: RunOptions, llm: Any, provider: Any, factory: Any, rsettings: Any) -> Any:
    from agent import AgentSettings, SearchAgent

    kwargs: dict[str, Any] = {"llm": llm, "provider": provider}
    if factory is not None:
        kwargs["fetcher_factory"] = factory
    if rsettings is not None:
        kwargs["retrieval_settings"] = rsettings
    return SearchAgent(AgentSettings(**opts.agent), **kwargs)


async def _ask_one(job: _Job, agent: Any, idx: int, ex: Example, mode: str,
                   page_texts: dict[str, str] | None, timeout_s: float | None) -> EvalResult:
    """One question scored into a result row; a failure is recorded with the question and counted as wrong."""
    t0 = time.perf_counter()
    error = None
    try:
        coro = _answer(agent, ex.question, mode)
        answer = await (asyncio.wait_for(coro, timeout_s) if timeout_s else coro)
        row = score_answer(ex, answer, mode, page_texts=page_texts)
        latency = float(getattr(answer, "elapsed_s", 0.0) or 0.0) or (time.perf_counter() - t0)
        job.consecutive = 0
    except asyncio.TimeoutError:
        error = f"timed out after {timeout_s:.0f} s"
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - recorded with the question and counted as wrong
        error = str(e).splitlines()[0] if isinstance(e, QuestionFailed) and str(e) else render_error(e).message
    if error is not None:
        job.consecutive += 1
        job.last_error = error
        row = {"prediction": "", "em": 0.0, "f1": 0.0, "acc": 0.0, "short_em": 0.0, "short_f1": 0.0}
        latency = time.perf_counter() - t0
    fields = {k: (dumps(v) if k in ("citations", "fetched_urls", "fetched_titles", "trace", "step_times")
                  else v) for k, v in row.items()}
    return EvalResult(run_id=job.run_id, mode=mode, question_id=ex.id, idx=idx, question=ex.question,
                      gold=dumps(ex.answers), latency_s=latency, error=error, **fields)


async def _ask_all(job: _Job, agent: Any, page_texts: dict[str, str] | None) -> None:
    """Ask the pending questions with opts.concurrency workers; stop after too many failures in a row."""
    deadline = agent.settings.deadline_s
    timeout_s = (deadline * 2 + 120) if deadline else None
    queue: asyncio.Queue = asyncio.Queue()
    for item in job.pending:
        queue.put_nowait(item)
    stop = asyncio.Event()
    limit_at = time.monotonic() + job.time_limit_s if job.time_limit_s else None

    async def worker() -> None:
        while not stop.is_set() and not (limit_at is not None and time.monotonic() >= limit_at):
            try:
                idx, ex, mode = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            job.record(await _ask_one(job, agent, idx, ex, mode, page_texts, timeout_s))
            if job.consecutive >= job.settings.eval_max_consecutive_errors:
                stop.set()

    job.open_progress()
    try:
        await asyncio.gather(*(worker() for _ in range(job.opts.concurrency)))
    finally:
        if job.bar is not None:
            job.bar.close()
        with contextlib.suppress(Exception):
            agent.close()
    if stop.is_set():
        raise TooManyErrorsError(
            f"{job.consecutive} questions failed in a row (last: {job.last_error}); fix the cause and "
            f"resume with: moesearch eval run --resume {job.run_id}")


def rescore_run(run_id: str, *, settings: EvalSettings | None = None) -> RunSummary:
    """Recompute every stored row's metrics from its stored prediction, citations and pages (after a metric fix),
    without asking the model again. Failed rows stay failed (scored 0)."""
    import json

    settings = settings or EvalSettings()
    store = Store(settings=settings)
    run = store.get_run(run_id)
    opts = RunOptions.from_config(run.config_dict)
    dataset = load_dataset(opts.dataset, on_bad_line=opts.on_bad_line)  # type: ignore[arg-type]
    if run.dataset_sha256 and run.dataset_sha256 != dataset.sha256:
        raise RunConfigError(f"the dataset {opts.dataset} changed since run {run.id}; cannot rescore it")
    by_id = {ex.id: ex for ex in dataset}
    page_texts = dict(dataset.paragraphs()) if dataset.has_context and run.provider in ("auto", "localweb",
                                                                                        "replay") else None
    updated = []
    for row in store.results(run.id):
        ex = by_id.get(row.question_id)
        if ex is None or row.error:
            continue
        urls, titles = json.loads(row.fetched_urls), json.loads(row.fetched_titles)
        answer = {"text": row.prediction, "short_answer": row.short_answer, "citations": json.loads(row.citations),
                  "fetched_urls": urls,
                  "sources": [{"url": u, "title": t} for u, t in zip(urls, titles)] if len(urls) == len(titles)
                  else [], "settled": row.settled, "trace": json.loads(row.trace)}
        fields = score_answer(ex, answer, row.mode, page_texts=page_texts)
        for k in ("short_em", "short_f1", "em", "f1", "acc", "recall_fetched", "recall_cited", "cit_precision",
                  "cit_recall", "gold_in_fetched"):
            setattr(row, k, fields[k])
        updated.append(row)
    store.save_results(updated)
    done = store.count(run.id)
    return _summary(store, run.id, run.n_questions * len(run.mode_list) or done, [], settings)
