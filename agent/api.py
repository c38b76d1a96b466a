"""The library API: `SearchAgent(...).ask(question)` and `.astream(question)`.

    from agent import SearchAgent
    agent = SearchAgent()                      # embedded model, local corpus, settings from MOESEARCH_* variables
    answer = agent.ask("Who wrote Dune?")
    print(answer.text, [c.url for c in answer.citations])

One agent answers many questions at once (each gets its own budgets and evidence); the model serialises generation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import Any

from agent.context import Ledger, RunContext, StepLog
from agent.errors import AgentError, BadRequestError, EmptyQuestionError, ModelUnavailableError
from agent.settings import AgentSettings
from agent.state import AgentInput
from agent.types import MODES, Answer, AnswerReady, ErrorRaised, Event
from moesearch_core.errors import UserError, render_error


class SearchAgent:
    def __init__(self, settings: AgentSettings | None = None, *, llm=None, provider=None,
                 fetcher_factory: Callable[[], Any] | None = None, reader=None, model_settings=None,
                 retrieval_settings=None):
        """Build from settings (MOESEARCH_* variables by default) or from explicit parts.

        llm: a `model_runtime.LLM` (default: `load_llm(model_settings)`, the embedded model).
        provider: a retrieval search provider (default: `make_provider(retrieval_settings)`, the local corpus).
        fetcher_factory: returns a new async-context-manager fetcher per question (default: `retrieval.Fetcher`).
        """
        from retrieval import RetrievalSettings

        self.settings = settings or AgentSettings()
        self.retrieval_settings = retrieval_settings or RetrievalSettings()
        self.model_settings = model_settings
        self._llm = llm
        self._provider = provider
        self._fetcher_factory = fetcher_factory
        self._reader = reader
        self._owns: list[Any] = []  # what this agent created and must close
        self._init_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # for ask(): one private loop shared by all calls
        self._graph = None

    # ---- parts, built on first use ----
    @property
    def llm(self):
        with self._init_lock:
            if self._llm is None:
                from model_runtime import load_llm

                try:
                    self._llm = load_llm(self.model_settings)
                except UserError as e:
                    raise ModelUnavailableError(e.message) from e
                self._owns.append(self._llm)
            return self._llm

    @property
    def provider(self):
        with self._init_lock:
            if self._provider is None:
                from retrieval import make_provider

                self._provider = make_provider(self.retrieval_settings)
                self._owns.append(self._provider)
            return self._provider

    @property
    def reader(self):
        with self._init_lock:
            if self._reader is None:
                from retrieval import Reader

                self._reader = Reader(self.retrieval_settings)
            return self._reader

    def _new_fetcher(self):
        if self._fetcher_factory is not None:
            return self._fetcher_factory()
        from retrieval import Fetcher

        return Fetcher(self.retrieval_settings)

    @property
    def graph(self):
        if self._graph is None:
            from agent.graph import build_graph

            self._graph = build_graph()
        return self._graph

    # ---- asking ----
    def _settings_for(self, mode: str | None, review: bool | None = None) -> AgentSettings:
        mode = mode or self.settings.mode
        if mode not in MODES:
            raise BadRequestError(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
        update: dict[str, Any] = {"mode": mode}
        if review is not None:
            update["review_plan"] = review
        return self.settings.model_copy(update=update)

    async def astream(self, question: str, *, mode: str | None = None,
                      history: Sequence[tuple[str, str]] | None = None, documents: Sequence[Any] | None = None,
                      plan: Sequence[str] | None = None, review: bool | None = None) -> AsyncIterator[Event]:
        """Yield events while answering (agent.types: PlanMade, SearchDone, PageFetched, PageRead, NoteWritten,
        Reflected, Token, WarningRaised), then `answer` (event.data.answer is the Answer) or `error` (event.data:
        message, exit_code, exception) for errors a user can act on.

        With review=True (default: settings.review_plan) deep mode stops after the `plan` event
        (awaiting_review=True); ask again with plan=[sub-question, ...] as approved or edited."""
        question = (question or "").strip()
        if not question:
            raise EmptyQuestionError()
        settings = self._settings_for(mode, review)
        inputs: AgentInput = {"question": question, "mode": settings.mode,
                              "history": [tuple(t) for t in history or []],
                              "documents": list(documents) if documents else None,
                              "plan": list(plan) if plan is not None else None}
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        task = asyncio.create_task(self._answer_into(queue, settings, inputs))
        finished = False
        try:
            while (event := await queue.get()) is not None:
                yield event
            finished = True
        finally:
            if not finished:  # the caller stopped listening: stop the work too
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _answer_into(self, queue: asyncio.Queue, settings: AgentSettings, inputs: AgentInput) -> None:
        """Run the graph, putting every event on `queue`; an error becomes an `error` event; None ends the stream."""
        emit = _emitter(queue, asyncio.get_running_loop())
        ledger = Ledger(settings)
        try:
            async with self._services(settings, bool(inputs["documents"])) as (llm, provider, fetcher, reader):
                ledger = Ledger(settings)  # the clock and the deadline start once the model and index are loaded
                ctx = RunContext(settings, llm, provider, fetcher, reader, emit, ledger)
                out = await self.graph.ainvoke(inputs, {"recursion_limit": 100}, context=ctx)
            if out.get("answer") is not None:  # else the plan awaits review (settings.review_plan)
                emit(Event.of(AnswerReady(out["answer"]), round(ledger.elapsed(), 3)))
        except Exception as e:  # noqa: BLE001 - every failure becomes an event; render_error words it
            shown = render_error(e)
            emit(Event.of(ErrorRaised(shown.message, shown.exit_code, e), round(ledger.elapsed(), 3)))
        finally:
            emit(None)

    @asynccontextmanager
    async def _services(self, settings: AgentSettings, given_documents: bool):
        """(llm, provider, fetcher, reader) for one question; the fetcher is opened here and closed after."""
        searching = settings.mode != "closed-book" and not given_documents
        llm = await asyncio.to_thread(lambda: self.llm)
        provider = await asyncio.to_thread(lambda: self.provider) if searching else None
        reader = await asyncio.to_thread(lambda: self.reader) if settings.mode != "closed-book" else None
        if provider is None:
            yield llm, None, None, reader
            return
        fetcher = self._new_fetcher()
        await fetcher.__aenter__()
        try:
            yield llm, provider, fetcher, reader
        finally:
            await fetcher.__aexit__(None, None, None)

    async def aask(self, question: str, **kwargs) -> Answer:
        """Answer one question; raises the error a user can act on (AgentError and friends)."""
        answer = None
        async with aclosing(self.astream(question, review=False, **kwargs)) as events:  # closed even on error
            async for event in events:
                if isinstance(event.data, AnswerReady):
                    answer = event.data.answer
                elif isinstance(event.data, ErrorRaised):
                    raise event.data.exception
        if answer is None:  # pragma: no cover - astream always ends with answer or error
            raise AgentError("the agent stopped without an answer; try again")
        return answer

    def ask(self, question: str, *, mode: str | None = None, history: Sequence[tuple[str, str]] | None = None,
            documents: Sequence[Any] | None = None, plan: Sequence[str] | None = None) -> Answer:
        """Answer one question (blocking). Safe to call from several threads at once."""
        return self._call(self.aask(question, mode=mode, history=history, documents=documents, plan=plan))

    def plan(self, question: str, *, history: Sequence[tuple[str, str]] | None = None) -> list[dict]:
        """The sub-questions deep mode would search, for the caller to review and edit; then ask(q, plan=[...])."""
        return self._call(self.aplan(question, history=history))

    async def aplan(self, question: str, *, history: Sequence[tuple[str, str]] | None = None) -> list[dict]:
        from agent.steps.plan import make_plan

        question = (question or "").strip()
        if not question:
            raise EmptyQuestionError()
        llm = await asyncio.to_thread(lambda: self.llm)
        ctx = RunContext(self.settings.model_copy(update={"mode": "deep"}), llm)
        subs = await make_plan(ctx, StepLog(ctx), question, list(history or []))
        return [s.summary() for s in subs if s.id != "q0"]

    def _call(self, coro):
        """Run a coroutine on the agent's private event loop (a daemon thread), so async clients stay on one loop."""
        with self._init_lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="moesearch-agent", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        for part in reversed(self._owns):
            closer = getattr(part, "close", None)
            if closer is not None:
                try:
                    closer()
                except Exception:  # noqa: BLE001 - closing must not hide the real outcome
                    pass
        self._owns.clear()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None

    def __enter__(self) -> "SearchAgent":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _emitter(queue: asyncio.Queue, loop: asyncio.AbstractEventLoop) -> Callable[[Event | None], None]:
    """Put events on `queue` from the loop (the steps) or from a worker thread (the answer's tokens)."""
    def emit(event: Event | None) -> None:
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            queue.put_nowait(event)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, event)

    return emit
