"""The evaluator as a Python library (for notebooks and scripts): load a dataset, run, score, report.

    from eval.api import load_dataset, run_eval, score, report
    ds = load_dataset("hotpotqa-dev")
    summary = run_eval("hotpotqa-dev", modes=["closed-book", "quick"], limit=20)
    score(summary.run_id)["quick"]["f1"]          # {"mean": ..., "lo": ..., "hi": ..., "n": ...}
    report([summary.run_id]).markdown              # Path to report.md (plots next to it)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.datasets import Dataset, Example
from eval.datasets import load_dataset as _load
from eval.report import Report, make_report
from eval.runner import RunOptions, RunSummary
from eval.runner import run_eval as _run
from eval.scoring import aggregate, score_answer
from eval.settings import EvalSettings
from eval.store import Store


def load_dataset(name_or_path: str | Path = "hotpotqa-dev", *, on_bad_line: str = "skip") -> Dataset:
    """A registered set or a JSONL file; malformed lines are skipped (listed in `.problems`) or raise."""
    return _load(name_or_path, on_bad_line=on_bad_line)  # type: ignore[arg-type]


def run_eval(dataset: str | Path = "hotpotqa-dev", *, modes: Sequence[str] = ("quick",), model: str = "embedded",
             limit: int | None = None, concurrency: int = 1, provider: str = "auto", searxng_url: str | None = None,
             replay: str | Path | None = None, record: bool = True, on_bad_line: str = "skip",
             agent: dict[str, Any] | None = None, llm: Any = None, resume: str | None = None,
             time_limit_s: float | None = None, progress: bool = False,
             settings: EvalSettings | None = None) -> RunSummary:
    """Run (or with `resume`, continue) an evaluation; rows go to the eval tables of MOESEARCH_DB.

    Pass `llm` to reuse an already loaded model. Returns the run id, the number of questions scored and the
    aggregate metrics per mode.
    """
    if resume is not None:
        return _run(None, resume=resume, llm=llm, settings=settings, progress=progress, time_limit_s=time_limit_s,
                    command="eval.api.run_eval(resume=...)")
    opts = RunOptions(dataset=str(dataset), modes=list(modes), model=model, limit=limit, concurrency=concurrency,
                      provider=provider, searxng_url=searxng_url,
                      replay=str(Path(replay).expanduser().resolve()) if replay else None, record=record,
                      on_bad_line=on_bad_line, agent=dict(agent or {}))
    return _run(opts, llm=llm, settings=settings, progress=progress, time_limit_s=time_limit_s,
                command=f"eval.api.run_eval({str(dataset)!r}, modes={list(modes)!r}, limit={limit!r})")


def score(run_id_or_rows: str | Sequence[Any], *, settings: EvalSettings | None = None) -> dict[str, dict[str, Any]]:
    """Aggregate metrics per mode (with 95% bootstrap CIs) of a stored run, or of result rows/dicts."""
    settings = settings or EvalSettings()
    if isinstance(run_id_or_rows, str):
        store = Store(settings=settings)
        rows = store.results(store.get_run(run_id_or_rows).id)
    else:
        rows = list(run_id_or_rows)
    return aggregate(rows, resamples=settings.eval_bootstrap)


def report(run_ids: Sequence[str], out_dir: str | Path | None = None, *,
           settings: EvalSettings | None = None) -> Report:
    """Write report.md and PNG plots comparing the runs; returns their paths and the table."""
    return make_report(list(run_ids), out_dir, settings=settings)


__all__ = ["Dataset", "Example", "Report", "RunOptions", "RunSummary", "load_dataset", "report", "rescore", "run_eval", "score",
           "score_answer"]


def rescore(run_id: str, *, settings: EvalSettings | None = None) -> RunSummary:
    """Recompute a stored run's metrics from its stored answers (no model calls)."""
    from eval.runner import rescore_run

    return rescore_run(run_id, settings=settings)
