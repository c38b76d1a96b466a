"""The LangGraph graph: only wiring and routing. The steps live in agent/steps/, the state in agent/state.py, the
run's services (runtime context) in agent/context.py.

    START -> plan -> (awaiting review: END) -> schedule -> act (each ready sub-question, in parallel, via Send)
                                                 ^  |  -> reflect (deep mode, while rounds and searches are left)
                                                 |__|  -> answer -> END
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from agent.context import RunContext
from agent.planning import ready
from agent.state import AgentInput, AgentOutput, AgentState
from agent.steps.act import act
from agent.steps.answer import answer
from agent.steps.plan import plan
from agent.steps.reflect import reflect


def after_plan(state: AgentState) -> Literal["schedule", "__end__"]:
    """Stop before any action when the caller reviews the plan (it then asks again with plan=[...])."""
    return END if state.get("awaiting_review") else "schedule"


def route(state: AgentState, runtime: Runtime[RunContext]) -> list[Send] | Literal["reflect", "answer"]:
    """Act on every ready sub-question; when none is left, reflect (deep mode, budgets left) or answer."""
    ctx = runtime.context
    subs = state.get("sub_questions", {})
    todo = ready(list(subs.values()))
    if todo and not ctx.ledger.past_deadline():
        done = {k: s for k, s in subs.items() if s.status == "done"}
        return [Send("act", {"sub": s, "done": done, "question": state["question"], "mode": state["mode"],
                             "documents": state.get("documents")}) for s in todo]
    rnd = state.get("round", 1)
    if (state["mode"] == "deep" and not state.get("documents")
            and state.get("reflected_round", 0) < rnd < ctx.settings.rounds
            and ctx.ledger.searches_left > 0 and not ctx.ledger.past_deadline()):
        return "reflect"
    return "answer"


def _schedule(state: AgentState) -> dict:
    """A join point: the routing after it sees every parallel act's update."""
    return {}


def build_graph():
    g = StateGraph(AgentState, context_schema=RunContext, input_schema=AgentInput, output_schema=AgentOutput)
    g.add_node("plan", plan)
    g.add_node("schedule", _schedule)
    g.add_node("act", act)
    g.add_node("reflect", reflect)
    g.add_node("answer", answer)
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", after_plan, ["schedule", END])
    g.add_conditional_edges("schedule", route, ["act", "reflect", "answer"])
    g.add_edge("act", "schedule")
    g.add_edge("reflect", "schedule")
    g.add_edge("answer", END)
    return g.compile()
