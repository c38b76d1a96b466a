"""The LangGraph graph: plan -> act (every ready sub-question in parallel, via Send) -> reflect -> ... -> answer.

State holds only the sub-questions and the round; everything a node does goes through the question's `QuestionRun`
(config["configurable"]["run"]), which owns budgets, evidence and events.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from agent import prompts
from agent.answering import write_answer
from agent.planning import SubQuestion, clean_plan, new_words, question_itself, ready, resolve
from agent.run import QuestionRun


def _merge(a: dict, b: dict) -> dict:
    return {**a, **b}


class State(TypedDict, total=False):
    question: str
    subs: Annotated[dict[str, dict], _merge]  # id -> SubQuestion.to_dict()
    round: int
    reflected_round: int
    answer: Any
    awaiting_review: bool  # the plan is shown to the caller before any action (settings.review_plan)


def _run(config) -> QuestionRun:
    return config["configurable"]["run"]


def _subs(state: State) -> list[SubQuestion]:
    return [SubQuestion(**d) for d in state.get("subs", {}).values()]


async def make_plan(run: QuestionRun) -> list[SubQuestion]:
    """The model's plan for the question, cleaned; the question alone when the plan is empty, invalid or useless."""
    from model_runtime.errors import ModelOutputError

    s = run.settings
    try:
        c = await run.generate("plan", "plan", prompts.plan_prompt(run.question, s.max_sub_questions, run.history),
                               max_tokens=60 + 50 * s.max_sub_questions,
                               json_schema=prompts.plan_schema(s.max_sub_questions))
        subs, problems = clean_plan(c.data, run.question, s.max_sub_questions)
    except ModelOutputError as e:
        subs, problems = [question_itself(run.question)], [str(e)]
    if problems and run.trace:
        run.trace[-1].detail["repaired"] = problems  # shown in the trace: what was wrong with the model's plan
    return subs


async def plan_node(state: State, config) -> dict:
    run = _run(config)
    given = config["configurable"].get("plan")
    if run.mode == "closed-book":
        return {"subs": {}, "round": 1}
    if given is not None:
        subs = [question_itself(run.question)] + [SubQuestion(f"q{i + 1}", q) for i, q in enumerate(given)
                                                  if q.strip() and q.strip() != run.question][:8]
    elif run.mode == "deep" and not config["configurable"].get("documents"):
        subs = await make_plan(run)
    else:
        subs = [question_itself(run.question)]
    review = run.settings.review_plan and given is None and run.mode == "deep"
    run.emit("plan", sub_questions=[{"id": s.id, "question": s.question, "depends_on": s.depends_on} for s in subs],
             awaiting_review=review, round=1)
    return {"subs": {s.id: s.to_dict() for s in subs}, "round": 1, "awaiting_review": review}


def after_plan(state: State) -> str:
    """Stop before any action when the caller reviews the plan (it then asks again with plan=[...])."""
    return END if state.get("awaiting_review") else "schedule"


def route(state: State, config):
    run = _run(config)
    subs = _subs(state)
    todo = ready(subs)
    if todo and not run.expired():
        return [Send("act", {"sub": s.to_dict(), "subs": state["subs"]}) for s in todo]
    if (run.mode == "deep" and not config["configurable"].get("documents")
            and state.get("reflected_round", 0) < state.get("round", 1) < run.settings.rounds
            and run.searches_left > 0 and not run.expired()):
        return "reflect"
    return "answer"


async def act_node(payload: dict, config) -> dict:
    """Search, fetch and read for one sub-question, then (deep mode) a short note citing what was found."""
    run = _run(config)
    sub = SubQuestion(**payload["sub"])
    done = {d["id"]: SubQuestion(**d) for d in payload["subs"].values() if d["status"] == "done"}
    query = resolve(sub, done) or sub.question
    documents = config["configurable"].get("documents")
    if documents:  # reading given documents: no search, no fetch
        docs = list(documents)
        for d in docs:
            run.sources.setdefault(d.url, {"url": d.url, "title": d.title, "published": d.published})
    else:
        hits = await run.search(query, sub)
        seen, picked = set(), []
        for h in hits:
            if h.url not in seen:
                seen.add(h.url)
                picked.append(h)
        docs = [d for d in await asyncio.gather(*(run.document(h) for h in picked[:run.settings.pages_per_search]))
                if d is not None]
    kept = []
    for doc in docs:
        kept.extend(await run.read(doc, query, sub))
    note = ""
    # a note per sub-question: the answer found so far, whose new entities the next round searches (deep mode)
    if run.mode == "deep" and run.settings.notes and kept and not config["configurable"].get("documents") \
            and not run.expired():
        best = sorted(kept, key=lambda e: e.score, reverse=True)[:4]
        c = await run.generate("note", sub.question, prompts.note_prompt(
            query, [(i + 1, e.title, e.prompt_text()) for i, e in enumerate(best)]), max_tokens=48,
            stop=prompts.EVIDENCE_STOPS)
        # the note cites the prompt's numbers; store the pool's ids instead
        note = re.sub(r"\[(\d+)\]", lambda m: f"[{best[int(m.group(1)) - 1].id}]"
                      if 0 < int(m.group(1)) <= len(best) else "", c.text.strip())
        run.emit("note", sub_question=sub.id, question=sub.question, text=note)
    sub.status, sub.note = "done", note
    return {"subs": {sub.id: sub.to_dict()}}


async def reflect_node(state: State, config) -> dict:
    """The model decides whether the notes answer the question; if not, it adds sub-questions (bounded by rounds)."""
    from model_runtime.errors import ModelOutputError

    run = _run(config)
    subs = _subs(state)
    rnd = state.get("round", 1)
    notes = [(s.question, s.note or "unknown") for s in subs if s.status == "done"]
    try:
        c = await run.generate("reflect", f"reflect round {rnd}", prompts.reflect_prompt(run.question, notes, 2),
                               max_tokens=120, json_schema=prompts.REFLECT_SCHEMA)
        decision = c.data
    except ModelOutputError:
        decision = {"enough": True, "sub_questions": []}
    new: list[SubQuestion] = []
    known = {" ".join(sorted(s.question.lower().split())) for s in subs}

    def add(question: str) -> None:
        key = " ".join(sorted(question.lower().split()))
        if key not in known and len(new) < 2:
            known.add(key)
            new.append(SubQuestion(f"q{len(subs) + len(new)}", question, [], rnd + 1))

    if not decision.get("enough"):
        cleaned, _ = clean_plan([{"question": q} for q in decision.get("sub_questions", [])], run.question, 2)
        for s in cleaned[1:]:
            add(s.question)
    # Bridge: an entity a note found (the actress, the director) is searched together with the question, which
    # is the next hop of a multi-hop question whatever the model decided; a strong model's own follow-ups go first.
    searched = " ".join(s.question for s in subs)
    for s in subs:
        entity = new_words(s.note, searched) if s.status == "done" else ""
        if entity:
            add(f"{entity}: {run.question}")
    run.emit("reflect", decision="more" if new else "answer",
             new_sub_questions=[{"id": s.id, "question": s.question} for s in new], round=rnd)
    if not new:
        return {"reflected_round": rnd}
    return {"reflected_round": rnd, "round": rnd + 1, "subs": {s.id: s.to_dict() for s in new}}


async def answer_node(state: State, config) -> dict:
    run = _run(config)
    notes = [(s.question, s.note) for s in _subs(state) if s.status == "done" and s.note]
    return {"answer": await write_answer(run, notes)}


def _schedule(state: State) -> dict:
    return {}


def build_graph():
    g = StateGraph(State)
    g.add_node("plan", plan_node)
    g.add_node("schedule", _schedule)
    g.add_node("act", act_node)
    g.add_node("reflect", reflect_node)
    g.add_node("answer", answer_node)
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", after_plan, ["schedule", END])
    g.add_conditional_edges("schedule", route, ["act", "reflect", "answer"])
    g.add_edge("act", "schedule")
    g.add_edge("reflect", "schedule")
    g.add_edge("answer", END)
    return g.compile()

