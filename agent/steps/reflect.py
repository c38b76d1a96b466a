"""The reflect step (deep mode): do the notes answer the question? If not, add sub-questions for the next round:
the model's own follow-ups first, then a bridge search for each entity a note found."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agent import prompts
from agent.actions import generate
from agent.context import RunContext, StepLog
from agent.planning import SubQuestion, clean_plan, new_words
from agent.state import AgentState
from agent.types import Reflected
from model_runtime.errors import ModelOutputError


async def reflect(state: AgentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """At most settings.reflect_new_sub_questions new sub-questions, numbered from state["next_id"] (fresh ids).

    Update: reflected_round; with new sub-questions also round + 1, sub_questions and next_id."""
    ctx, log = runtime.context, StepLog(runtime.context)
    question, rnd, limit = state["question"], state.get("round", 1), ctx.settings.reflect_new_sub_questions
    subs = list(state.get("sub_questions", {}).values())
    done = [s for s in subs if s.status == "done"]
    proposed = await _model_follow_ups(ctx, log, question, done, rnd)
    # Bridge: an entity a note found (the actress, the director) is searched together with the question, which
    # is the next hop of a multi-hop question whatever the model decided; a strong model's own follow-ups go first.
    searched = " ".join(s.question for s in subs)
    bridges = [f"{entity}: {question}" for s in done if (entity := new_words(s.note, searched))]
    texts = unseen(proposed + bridges, [s.question for s in subs], limit)
    next_id = state.get("next_id", len(subs))
    new = [SubQuestion(f"q{next_id + i}", text, [], rnd + 1) for i, text in enumerate(texts)]
    log.emit(Reflected("more" if new else "answer", [{"id": s.id, "question": s.question} for s in new], rnd))
    if not new:
        return log.update(reflected_round=rnd)
    return log.update(reflected_round=rnd, round=rnd + 1, sub_questions={s.id: s for s in new},
                      next_id=next_id + len(new))


async def _model_follow_ups(ctx, log: StepLog, question: str, done: list[SubQuestion], rnd: int) -> list[str]:
    """The model's new search questions, cleaned ([] when it says the findings are enough or writes nonsense)."""
    limit = ctx.settings.reflect_new_sub_questions
    notes = [(s.question, s.note or "unknown") for s in done]
    try:
        c = await generate(ctx, log, "reflect", f"reflect round {rnd}", prompts.reflect_prompt(question, notes, limit),
                           max_tokens=ctx.settings.reflect_tokens, json_schema=prompts.reflect_schema(limit))
        decision = c.data if isinstance(c.data, dict) else {}
    except ModelOutputError:
        decision = {"enough": True, "sub_questions": []}
    if decision.get("enough"):
        return []
    cleaned, _ = clean_plan([{"question": q} for q in decision.get("sub_questions", [])], question, limit)
    return [s.question for s in cleaned[1:]]


def unseen(candidates: list[str], asked: list[str], limit: int) -> list[str]:
    """The first `limit` candidates that ask nothing already asked (same words in any order, any case)."""
    def key(text: str) -> str:
        return " ".join(sorted(text.lower().split()))

    known = {key(q) for q in asked}
    out = []
    for text in candidates:
        if key(text) not in known and len(out) < limit:
            known.add(key(text))
            out.append(text)
    return out
