"""The plan step: the sub-questions to search, from the model (deep mode), from the caller (a reviewed plan), or
the question alone (quick mode, reading given documents)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agent import prompts
from agent.compare import question_kind
from agent.actions import generate
from agent.context import RunContext, StepLog
from agent.planning import SubQuestion, clean_plan, question_itself
from agent.state import AgentState
from agent.types import PlanMade
from model_runtime.errors import ModelOutputError


async def make_plan(ctx: RunContext, log: StepLog, question: str,
                    history: list[tuple[str, str]] | None = None) -> list[SubQuestion]:
    """The model's plan for the question, cleaned; the question alone when the plan is empty, invalid or useless."""
    s = ctx.settings
    try:
        c = await generate(ctx, log, "plan", "plan", prompts.plan_prompt(question, s.max_sub_questions, history),
                           max_tokens=s.plan_tokens, json_schema=prompts.plan_schema(s.max_sub_questions))
        subs, problems = clean_plan(c.data, question, s.max_sub_questions)
    except ModelOutputError as e:
        subs, problems = [question_itself(question)], [e.message]
    if problems and log.trace:
        log.trace[-1].detail["repaired"] = problems  # shown in the trace: what was wrong with the model's plan
    return subs


def reviewed_plan(question: str, given: list[str], limit: int) -> list[SubQuestion]:
    """The question itself, then the caller's sub-questions (at most `limit`, blanks and the question dropped)."""
    asked = [q.strip() for q in given if q.strip() and q.strip() != question]
    return [question_itself(question)] + [SubQuestion(f"q{i + 1}", q) for i, q in enumerate(asked[:limit])]


def entity_searches(question: str, subs: list[SubQuestion]) -> list[SubQuestion]:
    """For a comparison ("Who is older, A or B?"), one search per compared entity that no sub-question names yet:
    the question's own search often finds only one of them, and the comparison needs both values."""
    kind = question_kind(question)
    if kind.kind != "comparison":
        return []
    asked = [s.question.lower() for s in subs if s.id != "q0"]
    number = 1 + max(s.number for s in subs)
    out = []
    for entity in kind.entities:
        if not any(entity.lower() in q for q in asked):
            out.append(SubQuestion(f"q{number}", entity))
            number += 1
    return out


async def plan(state: AgentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Sub-questions for round 1. Deep mode asks the model (unless the caller gave a plan or documents); with
    settings.review_plan it stops after this step (awaiting_review) for the caller to approve or edit the plan.

    Update: sub_questions, next_id, round=1, awaiting_review, and the plan's model call in the trace."""
    ctx, log = runtime.context, StepLog(runtime.context)
    question, mode, given = state["question"], state["mode"], state.get("plan")
    if mode == "closed-book":
        return {"sub_questions": {}, "next_id": 1, "round": 1}
    if given is not None:
        subs = reviewed_plan(question, given, ctx.settings.max_reviewed_sub_questions)
    elif mode == "deep" and not state.get("documents"):
        subs = await make_plan(ctx, log, question, state.get("history"))
    else:
        subs = [question_itself(question)]
    if given is None and not state.get("documents"):
        subs = subs + entity_searches(question, subs)
    review = ctx.settings.review_plan and given is None and mode == "deep"
    log.emit(PlanMade([s.summary() for s in subs], review, 1))
    return log.update(sub_questions={s.id: s for s in subs}, next_id=1 + max(s.number for s in subs), round=1,
                      awaiting_review=review)
