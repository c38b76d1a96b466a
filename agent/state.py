"""What flows between the steps of one question: the LangGraph state, its input and output, and the reducers.

Modelled on langchain-ai/local-deep-researcher's state.py. Steps return partial updates; a reducer says how an update
joins what is there, which is what lets the `act` steps of several sub-questions run in parallel (LangGraph `Send`)
and each add their sub-question, evidence, trace steps and warnings. The run's services (model, search provider,
fetcher, reader, settings, event sink) are not state: they travel as runtime context (agent/context.py).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from agent.evidence import Evidence
from agent.planning import SubQuestion
from agent.types import Answer, Mode, Step


def merge_by_key(old: dict, new: dict) -> dict:
    """Dicts keyed by id: a later value for the same key replaces the earlier one (a sub-question marked done)."""
    return {**old, **new}


def add_evidence(old: list[Evidence], new: list[Evidence]) -> list[Evidence]:
    """Evidence once per id, by id (the run's ledger gives the same passage the same Evidence, whichever step
    read it first)."""
    seen = {e.id for e in old}
    out = list(old)
    for e in new:
        if e.id not in seen:
            seen.add(e.id)
            out.append(e)
    return sorted(out, key=lambda e: e.id)


def add_steps(old: list[Step], new: list[Step]) -> list[Step]:
    """The trace in the order the steps began (parallel sub-questions finish in any order)."""
    return sorted(old + new, key=lambda s: s.detail.get("t0", 0.0))


def add_unique(old: list[str], new: list[str]) -> list[str]:
    return old + [x for i, x in enumerate(new) if x not in old and x not in new[:i]]


class AgentInput(TypedDict, total=False):
    """What a caller gives: the question and how to answer it."""

    question: str
    mode: Mode
    history: list[tuple[str, str]]  # earlier (question, answer) turns of the conversation
    documents: list[Any] | None  # retrieval Documents to read instead of searching
    plan: list[str] | None  # sub-questions the caller approved or edited (skips the model's plan)


class AgentOutput(TypedDict, total=False):
    """What the graph returns: the answer, or nothing yet when the plan awaits the caller's review."""

    answer: Answer | None
    awaiting_review: bool
    sub_questions: dict[str, SubQuestion]


class AgentState(AgentInput, AgentOutput, total=False):
    """Everything one question accumulates.

    sub_questions: id -> SubQuestion (its status and note); next_id: the number of the next new sub-question, so ids
    are fresh by construction; round / reflected_round: the round of actions and the last one reflected on;
    evidence: passages kept, by id; trace: the steps run (model calls, searches, fetches, reads); warnings: shown to
    the user once each; sources: url -> {url, title, published} of every page read; fetched_urls: in fetch order.
    """

    sub_questions: Annotated[dict[str, SubQuestion], merge_by_key]
    next_id: int
    round: int
    reflected_round: int
    evidence: Annotated[list[Evidence], add_evidence]
    trace: Annotated[list[Step], add_steps]
    warnings: Annotated[list[str], add_unique]
    sources: Annotated[dict[str, dict], merge_by_key]
    fetched_urls: Annotated[list[str], operator.add]
    reasoning: str | None  # a reasoning model's <think> text, kept out of the answer


class ActInput(TypedDict):
    """What one `act` step gets (through Send): its sub-question and the sub-questions answered so far."""

    sub: SubQuestion
    done: dict[str, SubQuestion]
    question: str
    mode: Mode
    documents: list[Any] | None
