"""What the steps do to the world: call the model, search, fetch, read. Each records its trace step in the step's
`StepLog` and emits its event; budgets and the one-fetch-per-URL cache live in the run's `Ledger`.

Errors: a user-facing model failure becomes `ModelUnavailableError`, a search failure `SearchUnavailableError`
(both stop the question); a page that cannot be fetched or read is skipped with the reason shown.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agent.context import RunContext, StepLog
from agent.errors import ModelUnavailableError, SearchUnavailableError
from agent.evidence import Evidence
from agent.planning import SubQuestion
from agent.types import PageFetched, PageRead, SearchDone, Token
from model_runtime.errors import ModelOutputError
from moesearch_core.errors import UserError


async def generate(ctx: RunContext, log: StepLog, kind: str, label: str, prompt: str, *, max_tokens: int,
                   json_schema: dict | None = None, stop: list[str] | None = None) -> Any:
    """One model call in a worker thread, recorded in the trace; returns the model_runtime Completion.

    Raises ModelOutputError (recorded; the caller falls back) or ModelUnavailableError."""
    t0 = time.perf_counter()
    try:
        c = await asyncio.to_thread(ctx.llm.generate, prompt, max_tokens=max_tokens,
                                    temperature=ctx.settings.temperature, stop=stop, json_schema=json_schema)
    except ModelOutputError as e:
        log.step(kind, label, t0, error=e.message)
        raise
    except UserError as e:
        raise ModelUnavailableError(e.message) from e
    log.step(kind, label, t0, c.prompt_tokens, c.completion_tokens)
    return c


async def stream_answer(ctx: RunContext, log: StepLog, prompt: str, max_tokens: int,
                        stop: list[str]) -> Any:
    """Stream the answer, emitting a Token event per visible piece; returns the Completion (its .text, .reasoning)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    t0 = time.perf_counter()

    def produce() -> None:
        try:
            stream = ctx.llm.stream(prompt, max_tokens=max_tokens, temperature=ctx.settings.temperature, stop=stop)
            for piece in stream:
                loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
            loop.call_soon_threadsafe(queue.put_nowait, ("done", stream.completion))
        except BaseException as e:  # noqa: BLE001 - handed to the event loop below
            loop.call_soon_threadsafe(queue.put_nowait, ("error", e))

    worker = loop.run_in_executor(None, produce)
    pieces: list[str] = []
    shown = ""
    while True:
        kind, value = await queue.get()
        if kind == "done":
            break
        if kind == "error":
            await worker
            if isinstance(value, UserError):
                raise ModelUnavailableError(value.message) from value
            raise value
        pieces.append(value)
        visible = visible_text("".join(pieces))  # a reasoning model's <think> text is not streamed
        if visible.startswith(shown) and len(visible) > len(shown):
            log.emit(Token(visible[len(shown):]))
            shown = visible
    await worker
    log.step("answer", "answer", t0, value.prompt_tokens, value.completion_tokens)
    return value


def visible_text(text: str) -> str:
    """The part of a streamed answer outside <think>...</think> (an unfinished tag is held back)."""
    from model_runtime.base import split_reasoning

    visible, _ = split_reasoning(text)
    cut = visible.rfind("<")
    if cut >= 0 and "<think>".startswith(visible[cut:]):
        visible = visible[:cut]
    return visible


async def search(ctx: RunContext, log: StepLog, query: str, sub: SubQuestion) -> list:
    """The provider's hits for the query (one search from the budget; [] once it is spent)."""
    ledger = ctx.ledger
    if ledger.searches_left <= 0:
        log.out_of("search budget")
        return []
    ledger.searches_left -= 1
    t0 = time.perf_counter()
    s = ctx.settings
    try:
        result = await ctx.provider.asearch(query, k=s.search_k, time_range=s.time_range, language=s.language)
    except UserError as e:
        raise SearchUnavailableError(e.message) from e
    for w in result.warnings:
        log.warn(w)
    log.step("search", query, t0, hits=len(result.hits), sub_question=sub.id)
    log.emit(SearchDone(sub.id, query, len(result.hits), [h.url for h in result.hits],
                        [h.title for h in result.hits], list(result.warnings)))
    return result.hits


async def document(ctx: RunContext, log: StepLog, hit) -> Any:
    """The hit's Document, fetched and extracted once per question whichever sub-question asks; None if skipped.

    The step that asks first fetches (and records the fetch in its log); the others wait for the same result."""
    futures = ctx.ledger.documents
    if hit.url not in futures:
        futures[hit.url] = asyncio.ensure_future(_load(ctx, log, hit))
    doc = await futures[hit.url]
    if doc is not None:
        log.add_source(doc)
    return doc


async def _load(ctx: RunContext, log: StepLog, hit) -> Any:
    if hit.document is not None:  # the local index holds the whole document: nothing to fetch
        return hit.document
    if log.expired():
        log.emit(PageFetched(hit.url, False, "skipped: the time budget ran out"))
        return None
    if ctx.ledger.pages_left <= 0:
        log.out_of("page budget")
        log.emit(PageFetched(hit.url, False, "skipped: the page budget ran out"))
        return None
    ctx.ledger.pages_left -= 1
    t0 = time.perf_counter()
    try:
        page = await ctx.fetcher.fetch(hit.url)
        doc = await asyncio.to_thread(ctx.reader.extract, page)
    except UserError as e:  # a page that cannot be read is skipped, with the reason shown
        log.step("fetch", hit.url, t0, ok=False, reason=e.message)
        log.emit(PageFetched(hit.url, False, f"skipped: {e.message}"))
        return None
    doc.published = doc.published or hit.published
    doc.title = doc.title or hit.title
    log.fetched_urls.append(hit.url)
    log.step("fetch", hit.url, t0, ok=True, from_cache=page.from_cache, bytes=len(page.body))
    log.emit(PageFetched(hit.url, True, None, page.from_cache, doc.title))
    return doc


async def read(ctx: RunContext, log: StepLog, doc, query: str, sub: SubQuestion) -> list[Evidence]:
    """Rank the document's passages for the sub-question; the best become evidence (a passage read before stays
    the Evidence it became then)."""
    t0 = time.perf_counter()
    passages = await asyncio.to_thread(ctx.reader.rank, doc, query, ctx.settings.passages_per_page)
    kept = [_evidence(ctx, log, p, sub.id) for p in passages]
    log.step("read", doc.url, t0, passages=len(kept), sub_question=sub.id)
    log.emit(PageRead(doc.url, doc.title, len(kept), sub.id))
    return kept


def _evidence(ctx: RunContext, log: StepLog, passage, sub_question: str) -> Evidence:
    ev = ctx.ledger.evidence_for(passage, sub_question)
    log.evidence.append(ev)
    return ev
