"""What the steps do to the world: call the model, search, fetch, read. Each records its trace step in the step's
`StepLog` and emits its event; budgets and the one-fetch-per-URL cache live in the run's `Ledger`.

Errors: a user-facing model failure becomes `ModelUnavailableError`, a search failure `SearchUnavailableError`
(both stop the question); a page that cannot be fetched or read is skipped with the reason shown.
"""

from __future__ import annotations

import asyncio
import re
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
    visible = VisibleStream(hold=_opens_think(ctx.llm))
    while True:
        kind, value = await queue.get()
        if kind == "done":
            break
        if kind == "error":
            await worker
            if isinstance(value, UserError):
                raise ModelUnavailableError(value.message) from value
            raise value
        for token in visible.feed(value):
            log.emit(token)
    for token in visible.finish():
        log.emit(token)
    if visible.saw_close:
        _OPENS_THINK.add(id(ctx.llm))  # its template opens <think>: later answers are held back until it closes
    await worker
    log.step("answer", "answer", t0, value.prompt_tokens, value.completion_tokens)
    return value


# Models seen to write reasoning with a closing tag (their template opened <think> for them), by id
_OPENS_THINK: set[int] = set()
_TAGS = ("<think>", "</think>", "<thinking>", "</thinking>", "<reasoning>", "</reasoning>", "<thought>", "</thought>")


def _opens_think(llm: Any) -> bool:
    return bool(getattr(llm, "opens_think", False)) or id(llm) in _OPENS_THINK


class VisibleStream:
    """The visible part of a streamed answer as Token events: reasoning (before a closing ``</think>``, opened by
    the model or by its template) is never shown once its tag is seen, and the answer after the tag streams on.

    hold=True (a model known to reason without writing the opening tag): nothing is shown until a closing tag
    comes, or until the output ends without one. hold=False: text streams at once; if a closing tag comes after
    all, a Token(reset=True) replaces what was shown with the answer after the tag. A tag cut between pieces
    (``</thi``) is held back until it is complete."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.text = ""
        self.shown = ""
        self.saw_close = False

    def feed(self, piece: str) -> list[Token]:
        self.text += piece
        return self._show(visible_text(self.text, hold=self.hold))

    def finish(self) -> list[Token]:
        """The rest, once the output ended (a held answer without any tag is shown now)."""
        from model_runtime.base import split_reasoning

        answer, reasoning = split_reasoning(self.text)
        self.saw_close = reasoning is not None and bool(_CLOSE.search(self.text))
        return self._show(answer)

    def _show(self, visible: str) -> list[Token]:
        if visible == self.shown:
            return []
        if visible.startswith(self.shown):
            delta, self.shown = visible[len(self.shown):], visible
            return [Token(delta)]
        self.shown = visible
        return [Token(visible, reset=True)]


def visible_text(text: str, hold: bool = False) -> str:
    """The part of a streamed answer outside <think>...</think>, or after a closing tag with no opening one; an
    unfinished tag at the end is held back; with hold=True, nothing before the first closing tag."""
    from model_runtime.base import split_reasoning

    if hold and not _CLOSE.search(text) and not _OPEN.search(text):
        return ""
    visible, _ = split_reasoning(text)
    cut = visible.rfind("<")
    if cut >= 0 and any(tag.startswith(visible[cut:].lower()) for tag in _TAGS):
        visible = visible[:cut]
    return visible


_OPEN = re.compile(r"<(think|thinking|reasoning|thought)>", re.I)
_CLOSE = re.compile(r"</(think|thinking|reasoning|thought)>", re.I)


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
    t0 = time.perf_counter()
    try:  # a malformed or refused URL is skipped before it costs a page of the budget
        getattr(ctx.fetcher, "check", str)(hit.url)
    except UserError as e:
        return _skipped(log, hit, t0, e)
    if ctx.ledger.pages_left <= 0:
        log.out_of("page budget")
        log.emit(PageFetched(hit.url, False, "skipped: the page budget ran out"))
        return None
    ctx.ledger.pages_left -= 1
    t0 = time.perf_counter()
    try:
        page = await ctx.fetcher.fetch(hit.url)
        doc = await asyncio.to_thread(ctx.reader.extract, page, timeout_s=ctx.ledger.time_left())
    except UserError as e:  # a refused or unreadable page (a redirect to a bad URL too): skipped, reason shown
        return _skipped(log, hit, t0, e)
    doc.published = doc.published or hit.published
    doc.title = doc.title or hit.title
    log.fetched_urls.append(hit.url)
    log.step("fetch", hit.url, t0, ok=True, from_cache=page.from_cache, bytes=len(page.body))
    log.emit(PageFetched(hit.url, True, None, page.from_cache, doc.title))
    return doc


def _skipped(log: StepLog, hit, t0: float, e: UserError) -> None:
    log.step("fetch", hit.url, t0, ok=False, reason=e.message)
    log.emit(PageFetched(hit.url, False, f"skipped: {e.message}"))
    return None


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
