"""The act step, one per ready sub-question (in parallel): search, fetch and read, then in deep mode a short note
with the answer found so far, whose new entities the next round searches."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from langgraph.runtime import Runtime

from agent import prompts
from agent.actions import document, generate, read, search
from agent.context import RunContext, StepLog
from agent.evidence import Evidence
from agent.planning import SubQuestion, resolve
from agent.state import ActInput
from agent.text import replace_citations
from agent.types import NoteWritten


async def act(payload: ActInput, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Gather evidence for `payload["sub"]` (its {qN} references filled from the done sub-questions).

    Update: the sub-question marked done with its note, the evidence kept, the sources and fetches, the trace."""
    ctx, log = runtime.context, StepLog(runtime.context)
    sub, documents = payload["sub"], payload.get("documents")
    query = resolve(sub, payload["done"]) or sub.question
    docs = list(documents) if documents else await _search_and_fetch(ctx, log, query, sub)
    for d in docs if documents else []:  # given documents: no search, no fetch
        log.add_source(d)
    kept: list[Evidence] = []
    for doc in docs:
        kept.extend(await read(ctx, log, doc, query, sub))
    note = ""
    if payload["mode"] == "deep" and ctx.settings.notes and kept and not documents and not log.expired():
        note = await write_note(ctx, log, sub, query, kept)
    return log.update(sub_questions={sub.id: replace(sub, status="done", note=note)})


async def _search_and_fetch(ctx: RunContext, log: StepLog, query: str, sub: SubQuestion) -> list:
    """The documents of the top hits (each URL once), fetched in parallel; skipped pages left out."""
    hits = await search(ctx, log, query, sub)
    picked: dict[str, Any] = {}
    for h in hits:  # the first hit per URL, in rank order
        picked.setdefault(h.url, h)
    loaded = await asyncio.gather(*(document(ctx, log, h) for h in list(picked.values())[:ctx.settings.pages_per_search]))
    return [d for d in loaded if d is not None]


async def write_note(ctx: RunContext, log: StepLog, sub: SubQuestion, query: str, kept: list[Evidence]) -> str:
    """A few words answering the sub-question from its best passages, citing evidence ids as [n]."""
    best = sorted(kept, key=lambda e: e.score, reverse=True)[:ctx.settings.note_passages]
    c = await generate(ctx, log, "note", sub.question,
                       prompts.note_prompt(query, [(i + 1, e.title, e.prompt_text()) for i, e in enumerate(best)]),
                       max_tokens=ctx.settings.note_tokens, stop=prompts.EVIDENCE_STOPS)
    # the note cites the prompt's numbers; store the evidence ids instead
    note = replace_citations(c.text.strip(), lambda n: best[n - 1].id if 0 < n <= len(best) else None)
    log.emit(NoteWritten(sub.id, sub.question, note))
    return note
