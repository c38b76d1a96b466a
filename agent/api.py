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
from typing import Any

from agent.errors import AgentError, BadRequestError, EmptyQuestionError, ModelUnavailableError
from agent.settings import AgentSettings
from agent.types import Answer, Event

MODES = ("deep", "quick", "closed-book")


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
                except Exception as e:  # noqa: BLE001
                    if getattr(e, "user_facing", False):
                        raise ModelUnavailableError(str(e).splitlines()[0]) from e
                    raise
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
    def _settings_for(self, mode: str | None) -> AgentSettings:
        mode = mode or self.settings.mode
        if mode not in MODES:
            raise BadRequestError(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
        return self.settings.model_copy(update={"mode": mode})

    async def astream(self, question: str, *, mode: str | None = None,
                      history: Sequence[tuple[str, str]] | None = None, documents: Sequence[Any] | None = None,
                      plan: Sequence[str] | None = None, review: bool | None = None) -> AsyncIterator[Event]:
        """Yield events while answering: plan, search, fetch, read, note, reflect, token, warning, then `answer`
        (data["answer"] is the Answer) or `error` (data: message, exit_code) for errors a user can act on.

        With review=True (default: settings.review_plan) deep mode stops after the `plan` event
        (awaiting_review=True); ask again with plan=[sub-question, ...] as approved or edited."""
        from agent.errors import as_user_error
        from agent.run import QuestionRun

        question = (question or "").strip()
        if not question:
            raise EmptyQuestionError()
        settings = self._settings_for(mode)
        if review is not None:
            settings = settings.model_copy(update={"review_plan": review})
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def emit(event: Event) -> None:
            # nodes run on this loop; the answer's tokens come from a worker thread
            try:
                on_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                on_loop = False
            if on_loop:
                queue.put_nowait(event)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, event)

        async def work() -> None:
            try:
                llm = await asyncio.to_thread(lambda: self.llm)
                provider = None if settings.mode == "closed-book" or documents else \
                    await asyncio.to_thread(lambda: self.provider)
                reader = await asyncio.to_thread(lambda: self.reader) if settings.mode != "closed-book" else None
                fetcher = self._new_fetcher() if provider is not None else None
                if fetcher is not None:
                    await fetcher.__aenter__()
                try:
                    run = QuestionRun(question=question, mode=settings.mode, settings=settings, llm=llm,
                                      provider=provider, reader=reader, fetcher=fetcher,
                                      history=[tuple(t) for t in history or []], emit=emit)
                    config = {"configurable": {"run": run, "plan": list(plan) if plan is not None else None,
                                               "documents": list(documents) if documents else None},
                              "recursion_limit": 100}
                    state = await self.graph.ainvoke({"question": question}, config)
                    if state.get("answer") is not None:  # else the plan awaits review (settings.review_plan)
                        emit(Event("answer", {"answer": state["answer"]}, round(run.elapsed(), 3)))
                finally:
                    if fetcher is not None:
                        await fetcher.__aexit__(None, None, None)
            except Exception as e:  # noqa: BLE001 - errors a user can act on become an event
                user = as_user_error(e)
                if user is None:
                    emit(Event("error", {"message": f"internal error: {type(e).__name__}: {e}", "exit_code": 1,
                                         "exception": e}))
                else:
                    emit(Event("error", {"message": user[0], "exit_code": user[1], "exception": e}))
            finally:
                emit(None)

        task = asyncio.create_task(work())
        finished = False
        try:
            while True:
                event = await queue.get()
                if event is None:
                    finished = True
                    break
                yield event
        finally:
            if not finished:  # the caller stopped listening: stop the work too
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def aask(self, question: str, **kwargs) -> Answer:
        """Answer one question; raises the error a user can act on (AgentError and friends)."""
        answer = None
        async for event in self.astream(question, review=False, **kwargs):
            if event.kind == "answer":
                answer = event.data["answer"]
            elif event.kind == "error":
                raise event.data["exception"]
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
        from agent.graph import make_plan
        from agent.run import QuestionRun

        question = (question or "").strip()
        if not question:
            raise EmptyQuestionError()
        llm = await asyncio.to_thread(lambda: self.llm)
        run = QuestionRun(question=question, mode="deep", settings=self.settings, llm=llm, provider=None,
                          reader=None, fetcher=None, history=list(history or []), emit=lambda e: None)
        subs = await make_plan(run)
        return [{"id": s.id, "question": s.question, "depends_on": s.depends_on} for s in subs if s.id != "q0"]

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
