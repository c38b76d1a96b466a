"""The run's services, handed to every step as LangGraph runtime context (never stored in the state).

`RunContext` holds the model, the search provider, the fetcher, the reader, the settings and the event sink, plus a
`Ledger`: what the parallel `act` steps of one question must share as they run (the search and page budgets, the
deadline, one fetch per URL, one Evidence per passage). `StepLog` is one step's notebook: it emits
events as things happen and gathers the trace steps, warnings, sources and evidence the step returns as its update.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.evidence import Evidence
from agent.settings import AgentSettings
from agent.types import Event, Payload, Step, WarningRaised


@dataclass
class Ledger:
    """Budgets and shared caches of one question; one event loop uses it, so no locks are needed."""

    settings: AgentSettings
    started: float = field(default_factory=time.perf_counter)
    searches_left: int = 0
    pages_left: int = 0
    warned: set[str] = field(default_factory=set)
    documents: dict[str, asyncio.Future] = field(default_factory=dict)  # url -> the Document (or None), once
    evidence: dict[tuple[str, int, int], Evidence] = field(default_factory=dict)  # (url, start, end) -> first

    def __post_init__(self) -> None:
        self.searches_left = self.settings.max_searches
        self.pages_left = self.settings.max_pages

    @property
    def deadline(self) -> float | None:
        return self.started + self.settings.deadline_s if self.settings.deadline_s else None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def time_left(self) -> float | None:
        """Seconds until the deadline (0 once it passed), None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.perf_counter())

    def past_deadline(self) -> bool:
        """True once the deadline passed (no warning: StepLog.expired records that in a step's update)."""
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def evidence_for(self, passage: Any, sub_question: str) -> Evidence:
        """The passage as evidence, once per question: the first sub-question to read it numbers it (ids count
        from 1) and its score stays; a later reader of the same page span gets that same Evidence."""
        key = (passage.url, passage.start, passage.end)
        if key not in self.evidence:
            self.evidence[key] = Evidence(len(self.evidence) + 1, passage.url, passage.title, passage.text,
                                          passage.start, passage.end, float(passage.score), sub_question,
                                          getattr(passage, "published", None))
        return self.evidence[key]


@dataclass
class RunContext:
    """The services of one question. `llm` is a model_runtime.LLM; `provider`, `fetcher` (open, async) and `reader`
    are retrieval's, None where the mode does not search or read; `emit` receives every Event."""

    settings: AgentSettings
    llm: Any
    provider: Any = None
    fetcher: Any = None
    reader: Any = None
    emit: Callable[[Event], None] = lambda event: None
    ledger: Ledger = None  # type: ignore[assignment]  # made from settings when not given

    def __post_init__(self) -> None:
        if self.ledger is None:
            self.ledger = Ledger(self.settings)


class StepLog:
    """What one step did, gathered into its state update; events go out at once."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.trace: list[Step] = []
        self.warnings: list[str] = []
        self.sources: dict[str, dict] = {}
        self.fetched_urls: list[str] = []
        self.evidence: list[Evidence] = []

    def emit(self, payload: Payload) -> None:
        self.ctx.emit(Event.of(payload, round(self.ctx.ledger.elapsed(), 3)))

    def warn(self, message: str) -> None:
        """A warning for the user, once per question."""
        if message not in self.ctx.ledger.warned:
            self.ctx.ledger.warned.add(message)
            self.warnings.append(message)
            self.emit(WarningRaised(message))

    def out_of(self, budget: str) -> None:
        self.warn(f"the {budget} ran out; the answer uses the evidence found until then")

    def expired(self) -> bool:
        """True once the deadline passed (and warns once)."""
        if self.ctx.ledger.past_deadline():
            self.out_of(f"time budget ({self.ctx.settings.deadline_s:g} s)")
            return True
        return False

    def step(self, kind: str, label: str, started: float, tokens_in: int = 0, tokens_out: int = 0,
             **detail: Any) -> Step:
        """Record a step; t0 is when it began, in seconds since the question was asked (parallel steps overlap)."""
        s = Step(kind, label, round(time.perf_counter() - started, 4), tokens_in, tokens_out,
                 {"t0": round(started - self.ctx.ledger.started, 4), **detail})
        self.trace.append(s)
        return s

    def add_source(self, doc: Any) -> None:
        self.sources.setdefault(doc.url, {"url": doc.url, "title": doc.title, "published": doc.published})

    def update(self, **more: Any) -> dict[str, Any]:
        """The state update: what was gathered (only the non-empty parts) plus `more`."""
        gathered = {"trace": self.trace, "warnings": self.warnings, "sources": self.sources,
                    "fetched_urls": self.fetched_urls, "evidence": self.evidence}
        return {**{k: v for k, v in gathered.items() if v}, **more}
