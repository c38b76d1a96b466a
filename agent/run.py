"""One question being answered: its budgets, deadline, evidence, trace and event stream, and the actions it runs.

The graph (agent/graph.py) decides what happens next; this module does it. Each question gets its own
`QuestionRun`, so many questions can be answered at once by one agent; the model serialises generation itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from agent.errors import DeadlineError, ModelUnavailableError, SearchUnavailableError
from agent.evidence import EvidencePool
from agent.planning import SubQuestion
from agent.settings import AgentSettings
from agent.types import Event, Step


class QuestionRun:
    def __init__(self, *, question: str, mode: str, settings: AgentSettings, llm, provider, reader,
                 fetcher, history: list[tuple[str, str]] | None, emit: Callable[[Event], None]):
        self.question = question
        self.mode = mode
        self.settings = settings
        self.llm = llm
        self.provider = provider
        self.reader = reader
        self.fetcher = fetcher  # an open async fetcher (its `fetch(url)` returns a Page)
        self.history = history or []
        self._emit = emit
        self.started = time.perf_counter()
        self.deadline = self.started + settings.deadline_s if settings.deadline_s else None
        self.searches_left = settings.max_searches
        self.pages_left = settings.max_pages
        self.pool = EvidencePool()
        self.trace: list[Step] = []
        self.warnings: list[str] = []
        self.sources: dict[str, dict] = {}  # url -> {url, title, published}, every page read
        self.fetched_urls: list[str] = []
        self._documents: dict[str, asyncio.Task] = {}  # url -> task giving the Document (or None): one fetch per URL
        self.budget_notes: set[str] = set()
        self.reasoning: str | None = None  # a reasoning model's <think> text, kept out of the answer

    # ---- events, trace, budgets ----
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def emit(self, kind: str, **data: Any) -> None:
        self._emit(Event(kind, data, round(self.elapsed(), 3)))

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            self.emit("warning", message=message)

    def out_of(self, budget: str) -> None:
        """Note once that a budget ran out; the agent then answers from what it has."""
        if budget not in self.budget_notes:
            self.budget_notes.add(budget)
            self.warn(f"the {budget} ran out; the answer uses the evidence found until then")

    def expired(self) -> bool:
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.out_of(f"time budget ({self.settings.deadline_s:g} s)")
            return True
        return False

    def step(self, kind: str, label: str, started: float, tokens_in: int = 0, tokens_out: int = 0,
             **detail: Any) -> Step:
        # t0: when the step began, in seconds since the question was asked (steps of parallel sub-questions overlap)
        s = Step(kind, label, round(time.perf_counter() - started, 4), tokens_in, tokens_out,
                 {"t0": round(started - self.started, 4), **detail})
        self.trace.append(s)
        return s

    # ---- the model ----
    async def generate(self, kind: str, label: str, prompt: str, *, max_tokens: int, json_schema: dict | None = None,
                       stop: list[str] | None = None):
        """One model call in a worker thread, recorded in the trace. Model failures become ModelUnavailableError."""
        from model_runtime.errors import ModelOutputError

        t0 = time.perf_counter()
        try:
            c = await asyncio.to_thread(self.llm.generate, prompt, max_tokens=max_tokens,
                                        temperature=self.settings.temperature, stop=stop, json_schema=json_schema)
        except ModelOutputError as e:  # recorded, then the caller falls back
            self.step(kind, label, t0, error=str(e).splitlines()[0])
            raise
        except Exception as e:  # noqa: BLE001
            if getattr(e, "user_facing", False):
                raise ModelUnavailableError(str(e).splitlines()[0]) from e
            raise
        self.step(kind, label, t0, c.prompt_tokens, c.completion_tokens)
        return c

    async def stream_answer(self, prompt: str, max_tokens: int, stop: list[str]) -> tuple[str, Any]:
        """Stream the answer, emitting a token event per piece; returns (text, completion)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        t0 = time.perf_counter()

        def produce():
            try:
                stream = self.llm.stream(prompt, max_tokens=max_tokens, temperature=self.settings.temperature,
                                         stop=stop)
                for piece in stream:
                    loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
                loop.call_soon_threadsafe(queue.put_nowait, ("done", stream.completion))
            except BaseException as e:  # noqa: BLE001 - handed to the event loop below
                loop.call_soon_threadsafe(queue.put_nowait, ("error", e))

        worker = loop.run_in_executor(None, produce)
        pieces, shown = [], ""
        while True:
            kind, value = await queue.get()
            if kind == "piece":
                pieces.append(value)
                visible = _visible("".join(pieces))  # a reasoning model's <think> text is not streamed
                if visible.startswith(shown) and len(visible) > len(shown):
                    self.emit("token", text=visible[len(shown):])
                    shown = visible
            elif kind == "done":
                completion = value
                break
            else:
                await worker
                if getattr(value, "user_facing", False):
                    raise ModelUnavailableError(str(value).splitlines()[0]) from value
                raise value
        await worker
        self.step("answer", "answer", t0, completion.prompt_tokens, completion.completion_tokens)
        self.reasoning = completion.reasoning
        return completion.text, completion

    # ---- actions: search, fetch, read ----
    async def search(self, query: str, sub: SubQuestion) -> list:
        if self.searches_left <= 0:
            self.out_of("search budget")
            return []
        self.searches_left -= 1
        t0 = time.perf_counter()
        try:
            result = await self.provider.asearch(query, k=self.settings.search_k, time_range=self.settings.time_range,
                                                 language=self.settings.language)
        except Exception as e:  # noqa: BLE001
            if getattr(e, "user_facing", False):
                raise SearchUnavailableError(str(e).splitlines()[0]) from e
            raise
        for w in result.warnings:
            self.warn(w)
        self.step("search", query, t0, hits=len(result.hits), sub_question=sub.id)
        self.emit("search", sub_question=sub.id, query=query, hits=len(result.hits),
                  urls=[h.url for h in result.hits], titles=[h.title for h in result.hits], warnings=result.warnings)
        return result.hits

    async def document(self, hit):
        """The hit's Document, fetched and extracted once per question whichever sub-question asks; None if skipped."""
        if hit.url not in self._documents:
            self._documents[hit.url] = asyncio.ensure_future(self._load(hit))
        return await self._documents[hit.url]

    async def _load(self, hit):
        if hit.document is not None:  # the local index holds the whole document: nothing to fetch
            self._add_source(hit.document)
            return hit.document
        if self.expired():
            self.emit("fetch", url=hit.url, ok=False, reason="skipped: the time budget ran out", from_cache=False)
            return None
        if self.pages_left <= 0:
            self.out_of("page budget")
            self.emit("fetch", url=hit.url, ok=False, reason="skipped: the page budget ran out", from_cache=False)
            return None
        self.pages_left -= 1
        t0 = time.perf_counter()
        try:
            page = await self.fetcher.fetch(hit.url)
            doc = await asyncio.to_thread(self.reader.extract, page)
        except Exception as e:  # noqa: BLE001 - a page that cannot be read is skipped, with the reason shown
            if not getattr(e, "user_facing", False) and not _is_retrieval_error(e):
                raise
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            self.step("fetch", hit.url, t0, ok=False, reason=reason)
            self.emit("fetch", url=hit.url, ok=False, reason=f"skipped: {reason}", from_cache=False)
            return None
        if not doc.published and hit.published:
            doc.published = hit.published
        if not doc.title:
            doc.title = hit.title
        self.fetched_urls.append(hit.url)
        self._add_source(doc)
        self.step("fetch", hit.url, t0, ok=True, from_cache=page.from_cache, bytes=len(page.body))
        self.emit("fetch", url=hit.url, ok=True, reason=None, from_cache=page.from_cache, title=doc.title)
        return doc

    def _add_source(self, doc) -> None:
        self.sources.setdefault(doc.url, {"url": doc.url, "title": doc.title, "published": doc.published})

    async def read(self, doc, query: str, sub: SubQuestion) -> list:
        """Rank the document's passages for the sub-question; keep the best in the evidence pool."""
        t0 = time.perf_counter()
        passages = await asyncio.to_thread(self.reader.rank, doc, query, self.settings.passages_per_page)
        kept = [self.pool.add(p, sub.id) for p in passages]
        self.step("read", doc.url, t0, passages=len(kept), sub_question=sub.id)
        self.emit("read", url=doc.url, title=doc.title, passages=len(kept), sub_question=sub.id)
        return kept

    def check_deadline_before_answer(self) -> None:
        if self.deadline is not None and len(self.pool) == 0 and self.expired() and self.mode != "closed-book":
            raise DeadlineError(
                f"the deadline of {self.settings.deadline_s:g} s passed before any evidence was found; "
                "raise MOESEARCH_DEADLINE_S or use --mode quick")


def _visible(text: str) -> str:
    """The part of a streamed answer outside <think>...</think> (an unfinished tag is held back)."""
    from model_runtime.base import split_reasoning

    visible, _ = split_reasoning(text)
    cut = visible.rfind("<")
    if cut >= 0 and "<think>".startswith(visible[cut:]):
        visible = visible[:cut]
    return visible


def _is_retrieval_error(e: BaseException) -> bool:
    return type(e).__module__.startswith("retrieval")
