"""Runs the agent for the app on one background event loop, one question at a time.

Streamlit reruns the script on every click, and a rerun can interrupt the script while it waits for an answer. So the
agent does not run in the script: a question becomes a `Job` on this loop, which records the streamed tokens and step
lines and writes the answer (or the error) to the database itself when it is done; the script only follows the job.
The model is loaded once per process and kept until the sidebar asks for another one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

from agent.types import AnswerReady, ErrorRaised, Payload, Token, WarningRaised
from moesearch_core.errors import render_error
from ui.prefs import Prefs
from ui.render import answer_view, step_line
from ui.store import Store

log = logging.getLogger("moesearch.ui")


def user_message(exc: BaseException) -> str:
    """One line for the user (moesearch_core.errors.render_error); a bug's traceback goes to the terminal's log."""
    shown = render_error(exc, where="the details are in the terminal running moesearch ui")
    if not shown.user_error:
        log.error("the app failed:\n%s", "".join(traceback.format_exception(exc)))
    return shown.message


@dataclass
class Job:
    msg_id: int
    question: str
    text: str = ""  # the answer streamed so far
    steps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    view: dict[str, Any] | None = None  # the answer, once done
    error: str | None = None
    started: bool = False  # False while it waits for another question to finish
    done: threading.Event = field(default_factory=threading.Event)


def _validated(cls, overrides: dict[str, Any]):
    from pydantic import ValidationError

    try:
        return cls.model_validate(cls().model_dump() | overrides)
    except ValidationError as e:
        err = e.errors()[0]
        from ui.errors import UIError

        raise UIError(f"invalid setting {'.'.join(map(str, err['loc']))}: {err['msg']}; fix it in the sidebar") from None


class Runner:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="moesearch-ui-agent", daemon=True)
        self._thread.start()
        self._lock: asyncio.Lock | None = None
        self.jobs: dict[tuple[str, int], Job] = {}  # (database, message id) -> job
        self._llm = None
        self._llm_key: tuple | None = None
        self._agent = None
        self._agent_key: tuple | None = None
        self._provider = None
        self._reader = None
        self._rs_key: str | None = None

    # the agent, built from the sidebar's settings -------------------------------------------------------------------
    def _get_agent(self, prefs: Prefs):
        """Runs on a worker thread while holding the loop's lock. The model, the search provider (the local index)
        and the reader (its embedder) are kept across agents: changing a budget must not reload any of them."""
        from agent import AgentSettings, SearchAgent
        from model_runtime import load_llm
        from model_runtime.settings import ModelSettings
        from retrieval import Reader, RetrievalSettings, make_provider

        ms = _validated(ModelSettings, prefs.model_settings_overrides())
        agent_settings = _validated(AgentSettings, prefs.agent_settings_overrides())
        rs = _validated(RetrievalSettings, prefs.retrieval_settings_overrides())
        llm_key = (ms.model, ms.backend, ms.openai_url, ms.openai_model)
        rs_key = rs.model_dump_json()
        agent_key = (llm_key, rs_key, agent_settings.model_dump_json())
        if self._agent is not None and self._agent_key == agent_key:
            return self._agent
        self._agent, self._agent_key = None, None  # parts below are ours: the agent owns nothing to close
        if self._llm_key != llm_key:
            if self._llm is not None:
                _close(self._llm)
            self._llm, self._llm_key = None, None
            self._llm = load_llm(ms)
            self._llm_key = llm_key
        if self._rs_key != rs_key:
            if self._provider is not None:
                _close(self._provider)
            self._provider, self._reader, self._rs_key = make_provider(rs), Reader(rs), rs_key
        self._agent = SearchAgent(agent_settings, llm=self._llm, provider=self._provider, reader=self._reader,
                                  model_settings=ms, retrieval_settings=rs)
        self._agent_key = agent_key
        return self._agent

    def _locked(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    # questions -----------------------------------------------------------------------------------------------------
    def job(self, store: Store, msg_id: int | None) -> Job | None:
        return self.jobs.get((store.key, msg_id)) if msg_id is not None else None

    def busy(self, store: Store, msg_id: int | None) -> bool:
        job = self.job(store, msg_id)
        return job is not None and not job.done.is_set()

    def submit(self, store: Store, msg_id: int, question: str, prefs: Prefs, *, history: list[tuple[str, str]],
               documents: list[Any] | None = None, plan: list[str] | None = None) -> Job:
        job = Job(msg_id=msg_id, question=question)
        self.jobs[(store.key, msg_id)] = job
        asyncio.run_coroutine_threadsafe(self._run(job, store, prefs, history, documents, plan), self.loop)
        return job

    async def _run(self, job: Job, store: Store, prefs: Prefs, history, documents, plan) -> None:
        try:
            async with self._locked():
                job.started = True
                agent = await asyncio.to_thread(self._get_agent, prefs)
                docs = await asyncio.to_thread(documents) if callable(documents) else documents
                stream = agent.astream(job.question, mode=prefs.mode, history=history or None,
                                       documents=docs or None, plan=plan)
                async for ev in stream:
                    _follow(job, ev.data)
        except Exception as e:  # noqa: BLE001 - every failure becomes a message; the app keeps working
            job.error = user_message(e)
        finally:
            try:
                if job.view is not None:
                    store.set_answer(job.msg_id, job.view, job.steps)
                else:
                    store.set_error(job.msg_id, job.error or "the agent stopped without an answer; retry", job.steps)
            except Exception:  # noqa: BLE001
                log.error("could not store the answer:\n%s", traceback.format_exc())
            job.done.set()

    def plan(self, question: str, prefs: Prefs, history: list[tuple[str, str]], timeout_s: float = 900) -> list[dict]:
        """The agent's plan for a question (sub-questions for the user to review); blocks the caller."""

        async def go():
            async with self._locked():
                agent = await asyncio.to_thread(self._get_agent, prefs)
                return await agent.aplan(question, history=history or None)

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(timeout_s)

    def call(self, fn, *args, timeout_s: float = 120, **kwargs):
        """Run a coroutine function on the loop (e.g. fetching a page) and wait for its result."""
        return asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self.loop).result(timeout_s)


def _follow(job: Job, data: Payload) -> None:
    """Record one event of the job's stream: a streamed token, the answer, the error, a warning, a step line."""
    if isinstance(data, Token):
        job.text = data.text if data.reset else job.text + data.text  # reset: reasoning shown before </think>
    elif isinstance(data, AnswerReady):
        job.view = answer_view(data.answer)
    elif isinstance(data, ErrorRaised):
        job.error = user_message(data.exception) if data.exception is not None else data.message
    elif isinstance(data, WarningRaised):
        job.warnings.append(data.message)
    line = step_line(data)
    if line:
        job.steps.append(line)


def _close(obj: Any) -> None:
    try:
        close = getattr(obj, "close", None)
        if close:
            close()
    except Exception:  # noqa: BLE001
        log.warning("closing %r failed:\n%s", obj, traceback.format_exc())
