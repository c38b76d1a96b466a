"""`moesearch ask` in a terminal: live steps on stderr, the checked answer and its sources on stdout."""

from __future__ import annotations

import asyncio
import json
import sys

from rich.console import Console
from rich.markup import escape

from agent.errors import BadRequestError
from agent.types import (AnswerReady, ErrorRaised, Event, NoteWritten, PageFetched, PageRead, PlanMade, Reflected,
                         SearchDone, WarningRaised)


def build_agent(*, mode=None, model=None, backend=None, openai_url=None, provider=None, searxng_url=None, corpus=None,
                time_range=None, deadline=None):
    from pydantic import ValidationError

    from agent.api import SearchAgent
    from agent.types import MODES
    from agent.settings import AgentSettings
    from model_runtime.settings import ModelSettings
    from retrieval import RetrievalSettings

    if mode is not None and mode not in MODES:
        raise BadRequestError(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
    try:
        settings = AgentSettings(**_given(mode=mode, time_range=time_range, deadline_s=deadline))
        model_settings = ModelSettings(**_given(model=model, backend="openai" if openai_url else backend,
                                                openai_url=openai_url))
        retrieval_settings = RetrievalSettings(**_given(
            search_provider=provider or ("searxng" if searxng_url else None), searxng_url=searxng_url, corpus=corpus))
    except ValidationError as e:
        err = e.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "setting"
        raise BadRequestError(f"bad value for {name}: {err['msg']}; see `moesearch ask --help`") from None
    return SearchAgent(settings, model_settings=model_settings, retrieval_settings=retrieval_settings)


def _given(**kwargs):
    return {k: v for k, v in kwargs.items() if v is not None}


def describe(event: Event) -> str | None:
    """One line for a step, or None for events not shown as steps (tokens, the answer, an error)."""
    d = event.data
    if isinstance(d, PlanMade):
        return "plan: " + "; ".join(f"{s['id']} {s['question']}" for s in d.sub_questions)
    if isinstance(d, SearchDone):
        return f"search [{d.sub_question}] {d.query!r}: {d.hits} hits"
    if isinstance(d, PageFetched):
        return f"fetch {d.url}: " + ("cached" if d.from_cache else "ok" if d.ok else str(d.reason))
    if isinstance(d, PageRead):
        return f"read {d.title}: kept {d.passages} passages"
    if isinstance(d, NoteWritten):
        return f"note [{d.sub_question}] {d.text}"
    if isinstance(d, Reflected):
        more = "; ".join(s["question"] for s in d.new_sub_questions)
        return f"reflect: {d.decision}" + (f" ({more})" if more else "")
    if isinstance(d, WarningRaised):
        return f"warning: {d.message}"
    return None


def show_runtime_logs() -> None:
    """`--verbose`: llama.cpp's own lines (routed to the `moesearch.llamacpp` logger) go to stderr."""
    import logging

    log = logging.getLogger("moesearch.llamacpp")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)


def run_ask(question: str, *, as_json: bool = False, quiet: bool = False, verbose: bool = False, **options) -> None:
    if verbose:
        show_runtime_logs()
    if not question.strip():
        from agent.errors import EmptyQuestionError

        raise EmptyQuestionError()
    err = Console(stderr=True, highlight=False)
    out = Console(highlight=False, soft_wrap=True)
    agent = build_agent(**options)

    async def go():
        answer = None
        with err.status("working…", spinner="dots") if not quiet and err.is_terminal else _Null() as status:
            async for event in agent.astream(question):
                line = describe(event)
                if line and not quiet:
                    err.print(f"[dim]{event.t:6.1f}s[/dim] {escape(line)}")
                if isinstance(event.data, AnswerReady):
                    answer = event.data.answer
                elif isinstance(event.data, ErrorRaised):
                    raise event.data.exception
                if status is not None and line:
                    status.update(escape(line[:80]))
        return answer

    try:
        if not quiet:
            err.print("[dim]loading the model and the search index (the first run builds the index)…[/dim]")
        answer = asyncio.run(go())
    finally:
        agent.close()
    if as_json:
        sys.stdout.write(json.dumps(answer.to_dict(), ensure_ascii=False, default=str) + "\n")
        return
    if answer.short_answer:  # the direct answer first, then the explanation with its citations
        out.print(f"[bold]{escape(answer.short_answer)}[/bold]")
        out.print()
    out.print(escape(answer.text))
    if answer.citations:
        out.print()
        for c in answer.citations:
            out.print(f"[{c.n}] {escape(c.title)} — {escape(c.url)}")
            out.print(f"    [dim]“{escape(c.quote)}”[/dim]")
    for w in answer.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(w)}")
    err.print(f"[dim]{answer.elapsed_s:.1f} s, {answer.tokens_in} tokens in, {answer.tokens_out} out, "
              f"{len(answer.fetched_urls) or len(answer.sources)} sources read[/dim]")


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
