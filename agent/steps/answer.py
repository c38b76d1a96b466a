"""The answer step: choose the evidence that fits the context window, stream the answer, check its citations.

A weak model may cite nothing, cite wrongly or ramble: the citation check repairs what it can, and when nothing the
model wrote is supported, the answer falls back to quoting the most relevant passage and says the question is not
settled. A strong model's answer passes through the same check unchanged.

The short answer (a few words) is the first sentence of the model's answer, kept only when the cited passages
support it (agent/short_answer.py). A comparison whose values the evidence states ("Who is older, A or B?") is decided
in code (agent/compare.py) and explained from those values, whatever the model wrote.

To extend the answer (another field): add it in `_answer_from_evidence` / `build_answer`; the text helpers are in
agent/answering.py.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agent import compare, prompts, short_answer
from agent.actions import stream_answer
from agent.answering import best_sentence, drop_example_echo, tidy
from agent.citations import UNSETTLED_NOTE, check_citations
from agent.context import RunContext, StepLog
from agent.errors import DeadlineError
from agent.follow_ups import follow_ups
from agent.evidence import Evidence, EvidencePool
from agent.state import AgentState
from agent.types import Answer, Citation, Token

NO_EVIDENCE = "No sources were found for this question, so it is not answered."


async def answer(state: AgentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Update: answer (an Answer), reasoning, and the answer's model call in the trace."""
    ctx, log = runtime.context, StepLog(runtime.context)
    if state["mode"] == "closed-book":
        text, cited, settled, completion = await _answer_closed_book(ctx, log, state)
        short = ""  # nothing cited can support it
    else:
        text, cited, settled, completion = await _answer_from_evidence(ctx, log, state)
        text, cited, settled, short = direct_answer(state, text, cited, settled, completion)
    reasoning = getattr(completion, "reasoning", None)
    answer = build_answer(ctx, log, state, text, cited, settled, reasoning)
    answer.short_answer = short
    if log.trace and completion is not None:
        log.trace[-1].detail.update(short_answer=short, kind=compare.question_kind(state["question"]).kind)
    return log.update(answer=answer, reasoning=reasoning)


def direct_answer(state: AgentState, text: str, cited: list[Evidence], settled: bool, completion):
    """(text, cited, settled, short answer): a comparison the evidence states both values of is decided in code and
    explained from them; otherwise the model's first sentence is the short answer if the cited passages support it."""
    question = state["question"]
    decision = compare.decide(question, state.get("evidence", []))
    if decision is not None:
        used: list[Evidence] = []

        def number_of(e: Evidence) -> int:
            if e not in used:
                used.append(e)
            return used.index(e) + 1

        return compare.explain(decision, number_of), used, True, decision.short_answer
    kind = compare.question_kind(question)
    raw = completion.text if completion is not None else ""
    short = short_answer.check(short_answer.candidate(tidy(raw), kind, question), kind, cited, settled)
    return text, cited, settled, short


async def _answer_closed_book(ctx: RunContext, log: StepLog, state: AgentState):
    prompt = prompts.closed_book_prompt(state["question"], state.get("history"))
    completion = await stream_answer(ctx, log, prompt, ctx.settings.answer_tokens, prompts.STOPS)
    log.warn("closed-book: answered from the model's memory, without sources")
    return tidy(completion.text) or "I do not know.", [], False, completion


async def _answer_from_evidence(ctx: RunContext, log: StepLog, state: AgentState):
    """(text, cited evidence, settled, completion) from the evidence the notes point to."""
    question, history = state["question"], state.get("history")
    log.expired()  # a deadline that stopped the actions is said in the answer's warnings
    shown = choose_evidence(ctx, log, state)
    if not shown:
        log.emit(Token(NO_EVIDENCE))
        return NO_EVIDENCE, [], False, None
    # the notes choose and order the evidence; the prompt shows only evidence, which a small model cannot confuse
    # with instructions to copy
    prompt = prompts.answer_prompt(question, [(i + 1, e.title, e.prompt_text()) for i, e in enumerate(shown)], history)
    completion = await stream_answer(ctx, log, prompt, ctx.settings.answer_tokens, prompts.EVIDENCE_STOPS)
    raw = completion.text
    checked = check_citations(drop_example_echo(tidy(raw), shown), shown, question=question)
    text, cited, settled = checked.text, checked.cited, checked.settled
    if not cited:  # nothing the model wrote is backed by the evidence: quote the best passage instead
        best, sentence = best_sentence(question, shown)
        text, cited, settled = f"{UNSETTLED_NOTE} The most relevant source says: \"{sentence}\" [1]", [best], False
    log.trace[-1].detail.update(raw=raw[:1000], removed=checked.removed, replaced=checked.replaced,
                                dropped=checked.dropped, added=checked.added, shown=len(shown))
    return text, cited, settled, completion


def choose_evidence(ctx: RunContext, log: StepLog, state: AgentState) -> list[Evidence]:
    """The evidence for the answer prompt (EvidencePool.select), within the context window left by the prompt.

    Raises DeadlineError when the deadline passed before any evidence was found."""
    s, llm, question = ctx.settings, ctx.llm, state["question"]
    evidence = state.get("evidence", [])
    if ctx.ledger.deadline is not None and not evidence and log.expired():
        raise DeadlineError(f"the deadline of {s.deadline_s:g} s passed before any evidence was found; "
                            "raise MOESEARCH_DEADLINE_S or use --mode quick")
    frame = prompts.answer_prompt(question, [], state.get("history"))
    budget = s.evidence_tokens or max(256, llm.context_window - llm.count_tokens(frame) - s.answer_tokens - 64)
    notes = [sub.note for sub in state.get("sub_questions", {}).values() if sub.status == "done" and sub.note]
    shown, cut = EvidencePool(evidence).select(question, notes, s.max_evidence, budget, llm.count_tokens)
    if cut:
        log.warn(f"{cut} passage(s) left out to fit the model's context window ({llm.context_window} tokens)")
    return shown


def build_answer(ctx: RunContext, log: StepLog, state: AgentState, text: str, cited: list[Evidence],
                 settled: bool, reasoning: str | None) -> Answer:
    """The Answer: text, citations numbered as cited, and everything the run gathered (trace, warnings, sources)."""
    sources = {**state.get("sources", {}), **log.sources}
    citations = [Citation(i + 1, e.url, e.title, e.text, e.published) for i, e in enumerate(cited)]
    return Answer(
        question=state["question"], text=text, citations=citations, trace=list(state.get("trace", [])) + log.trace,
        mode=state["mode"], settled=settled, warnings=list(state.get("warnings", [])) + log.warnings,
        fetched_urls=list(state.get("fetched_urls", [])), sources=list(sources.values()), reasoning=reasoning,
        follow_ups=follow_ups(state["question"], text, cited, state.get("evidence", [])),
        elapsed_s=round(ctx.ledger.elapsed(), 3))
