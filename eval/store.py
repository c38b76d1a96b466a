"""Runs and per-question results in SQLite through SQLModel (tables `eval_run` and `eval_result`, owned by eval).

A result row is committed the moment its question finishes; (run_id, mode, question_id) is unique, so a resumed run
can neither lose nor duplicate a finished question.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import UniqueConstraint, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from retrieval.db import sqlite_engine

from eval import runlock
from eval.errors import RunNotFoundError
from eval.settings import EvalSettings

INTERRUPTED_NOTE = "the process running it stopped without finishing (killed?); resume it"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class EvalRun(SQLModel, table=True):
    __tablename__ = "eval_run"

    id: str = Field(primary_key=True)
    created_at: str = Field(default_factory=_now)
    updated_at: str = Field(default_factory=_now)
    status: str = "running"  # running | done | interrupted | failed
    dataset: str = ""  # registered name or path
    dataset_sha256: str = ""
    modes: str = "[]"  # JSON list
    model: str = ""
    model_sha256: str = ""  # of the model file (GGUF); empty for a model behind an HTTP server
    limit: int | None = None
    n_questions: int = 0  # questions per mode
    concurrency: int = 1
    provider: str = ""  # localweb | searxng | local | replay
    snapshot: str | None = None  # snapshot written (live) or read (replay)
    config: str = "{}"  # JSON: everything needed to resume exactly this run
    command: str = ""
    wall_s: float = 0.0  # summed over the invocations that worked on the run
    error: str | None = None

    @property
    def mode_list(self) -> list[str]:
        return json.loads(self.modes)

    @property
    def config_dict(self) -> dict[str, Any]:
        return json.loads(self.config)


class EvalResult(SQLModel, table=True):
    __tablename__ = "eval_result"
    __table_args__ = (UniqueConstraint("run_id", "mode", "question_id", name="uq_eval_result_question"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, foreign_key="eval_run.id")
    mode: str
    question_id: str
    idx: int = 0  # position in the dataset
    question: str = ""
    gold: str = "[]"  # JSON list of gold answers
    prediction: str = ""
    short_answer: str | None = None  # the answer in a few words (Answer.short_answer); "" when not settled
    citations: str = "[]"  # JSON list of {n, url, title, quote, published}
    fetched_urls: str = "[]"
    fetched_titles: str = "[]"
    trace: str = "[]"  # JSON list of steps {kind, label, elapsed_s, tokens_in, tokens_out}
    step_times: str = "{}"  # JSON {kind: seconds}
    # EM / F1 of short_answer (HotpotQA rules); NULL when the answer had none (made before short answers existed),
    # 0 for a failed question. No default value: SQLAlchemy would write a column default in place of None.
    short_em: float | None = None
    short_f1: float | None = None
    em: float = 0.0  # EM / F1 / contains-accuracy of the whole answer text
    f1: float = 0.0
    acc: float = 0.0
    recall_fetched: float | None = None
    recall_cited: float | None = None
    cit_precision: float | None = None
    cit_recall: float | None = None
    gold_in_fetched: float | None = None  # a gold answer occurs in the text of a page read (local web only)
    n_citations: int = 0
    settled: bool | None = None
    latency_s: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    error: str | None = None
    finished_at: str = Field(default_factory=_now)

    def as_dict(self) -> dict[str, Any]:
        d = self.model_dump()
        for k in ("gold", "citations", "fetched_urls", "fetched_titles", "trace", "step_times"):
            d[k] = json.loads(d[k])
        return d


_TABLES = [EvalRun.__table__, EvalResult.__table__]


def _engine_for(db: Path):
    engine = sqlite_engine(db, _TABLES)
    _add_new_columns(engine)
    return engine


def _add_new_columns(engine) -> None:
    """Columns added since a database was made (short answers, the model's sha256) are added to its tables, empty
    (NULL) for the rows already there."""
    from sqlalchemy import inspect, text

    with engine.begin() as conn:
        for table in _TABLES:
            have = {c["name"] for c in inspect(conn).get_columns(table.name)}
            for col in table.columns:
                if col.name not in have:
                    kind = col.type.compile(dialect=engine.dialect)
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {kind}'))


def model_identity(llm) -> dict[str, str]:
    """{"model": name, "model_sha256": hex or ""} of a loaded model, for `EvalRun` (the file's sha256 when the model
    runs from a local file, as llama.cpp and torch backends do)."""
    ident = {"model": str(getattr(llm, "name", "") or ""), "model_sha256": ""}
    path = getattr(llm, "path", None)
    if path is not None and Path(path).is_file():
        from model_runtime.registry import file_sha256

        ident["model_sha256"] = file_sha256(Path(path))
    return ident


class Store:
    """Access to the eval tables in the database named by MOESEARCH_DB (or `db`)."""

    def __init__(self, db: str | Path | None = None, settings: EvalSettings | None = None):
        settings = settings or EvalSettings()
        self.db = Path(db) if db is not None else Path(settings.db)
        self.engine = _engine_for(self.db)

    # runs
    @staticmethod
    def new_run_id() -> str:
        return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)

    def create_run(self, run: EvalRun) -> EvalRun:
        if run.status == "running":
            runlock.hold(self.db, run.id)  # before the row exists: a running row without a live holder is dead
        with Session(self.engine, expire_on_commit=False) as s:
            s.add(run)
            s.commit()
            s.refresh(run)
            return run

    def get_run(self, run_id: str) -> EvalRun:
        with Session(self.engine, expire_on_commit=False) as s:
            run = s.get(EvalRun, run_id)
            if run is None:  # allow a unique prefix, as with git hashes
                matches = s.exec(select(EvalRun).where(EvalRun.id.startswith(run_id))).all()
                if len(matches) == 1:
                    run = matches[0]
        if run is None:
            raise RunNotFoundError(f"no eval run {run_id!r} in {self.db}; see `moesearch eval list`")
        return self._checked(run)

    def update_run(self, run_id: str, **fields: Any) -> None:
        if fields.get("status") == "running":
            runlock.hold(self.db, run_id)
        with Session(self.engine, expire_on_commit=False) as s:
            run = s.get(EvalRun, run_id)
            if run is None:
                raise RunNotFoundError(f"no eval run {run_id!r} in {self.db}")
            for k, v in fields.items():
                setattr(run, k, v)
            run.updated_at = _now()
            s.add(run)
            s.commit()
        if fields.get("status", "running") != "running":
            runlock.release(self.db, run_id)

    def _checked(self, run: EvalRun) -> EvalRun:
        """``run``, marked ``interrupted`` (in the database too) when it says running but no process runs it."""
        if run.status != "running" or runlock.is_alive(self.db, run.id):
            return run
        with Session(self.engine, expire_on_commit=False) as s:
            # only if still running: a run that finished since it was read keeps its status
            s.exec(update(EvalRun).where(EvalRun.id == run.id, EvalRun.status == "running")
                   .values(status="interrupted", error=run.error or INTERRUPTED_NOTE, updated_at=_now()))
            s.commit()
            return s.get(EvalRun, run.id) or run

    def list_runs(self) -> list[EvalRun]:
        with Session(self.engine, expire_on_commit=False) as s:
            runs = list(s.exec(select(EvalRun).order_by(EvalRun.created_at.desc())).all())
        return [self._checked(r) for r in runs]

    def delete_run(self, run_id: str) -> None:
        run_id = self.get_run(run_id).id
        with Session(self.engine, expire_on_commit=False) as s:
            for r in s.exec(select(EvalResult).where(EvalResult.run_id == run_id)).all():
                s.delete(r)
            s.delete(s.get(EvalRun, run_id))
            s.commit()

    # results
    def add_result(self, result: EvalResult) -> bool:
        """Commit one finished question; False (and nothing written) when it was already recorded."""
        with Session(self.engine, expire_on_commit=False) as s:
            s.add(result)
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
                return False
            return True

    def save_results(self, rows: list[EvalResult]) -> None:
        """Write back rows changed in place (rescoring), in one transaction."""
        with Session(self.engine, expire_on_commit=False) as s:
            for r in rows:
                s.merge(r)
            s.commit()

    def results(self, run_id: str, mode: str | None = None) -> list[EvalResult]:
        with Session(self.engine, expire_on_commit=False) as s:
            q = select(EvalResult).where(EvalResult.run_id == run_id)
            if mode is not None:
                q = q.where(EvalResult.mode == mode)
            return list(s.exec(q.order_by(EvalResult.mode, EvalResult.idx)).all())

    def done_keys(self, run_id: str) -> set[tuple[str, str]]:
        """(mode, question_id) of every question already recorded for the run."""
        with Session(self.engine, expire_on_commit=False) as s:
            rows = s.exec(select(EvalResult.mode, EvalResult.question_id).where(EvalResult.run_id == run_id)).all()
            return {(m, q) for m, q in rows}

    def count(self, run_id: str) -> int:
        return len(self.done_keys(run_id))


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


__all__ = ["EvalRun", "EvalResult", "Store", "dumps", "model_identity"]
