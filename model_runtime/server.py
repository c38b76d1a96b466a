"""`moesearch model serve`: any `LLM` behind an OpenAI-compatible HTTP API (chat completions, completions, models).

One generation runs at a time per model (llama.cpp has one context); requests queue behind a lock in the backend.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import iterate_in_threadpool, run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from model_runtime.base import LLM, Message
from moesearch_core.errors import UserError, render_error


class ChatMessage(BaseModel):
    role: str
    content: str | list[dict[str, Any]] | None = ""

    def text(self) -> str:
        if isinstance(self.content, list):  # OpenAI "content parts": keep the text parts
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    stop: str | list[str] | None = None
    stream: bool = False
    response_format: dict[str, Any] | None = None


class CompletionRequest(BaseModel):
    model: str | None = None
    prompt: str
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    stop: str | list[str] | None = None
    stream: bool = False


def _stops(stop: str | list[str] | None) -> list[str] | None:
    return [stop] if isinstance(stop, str) else stop


def _schema(response_format: dict[str, Any] | None) -> dict | None:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
    if kind == "json_object":
        return {"type": "object"}
    return None


def create_app(llm: LLM) -> FastAPI:
    """The OpenAI-compatible app for `llm`: /health, /v1/models, /tokenize, /v1/chat/completions, /v1/completions.
    A `UserError` becomes HTTP 400 with {"error": {"message", "type"}} (the message from render_error)."""
    app = FastAPI(title="moesearch model server", version="1")

    @app.exception_handler(UserError)
    async def _user_error(_: Request, e: UserError):
        return JSONResponse({"error": {"message": render_error(e).message, "type": type(e).__name__}},
                            status_code=400)

    _add_info_routes(app, llm)
    _add_chat_route(app, llm)
    _add_completion_route(app, llm)
    return app


def _add_info_routes(app: FastAPI, llm: LLM) -> None:
    created = int(time.time())

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": llm.name}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": llm.name, "object": "model", "created": created,
                                            "owned_by": "moesearch", "backend": llm.backend,
                                            "context_window": llm.context_window}]}

    @app.post("/tokenize")
    def tokenize(body: dict) -> dict:
        text = str(body.get("content", ""))
        return {"tokens": list(range(llm.count_tokens(text)))}  # a count is all clients use


def _usage(c: Any) -> dict[str, int]:
    return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
            "total_tokens": c.prompt_tokens + c.completion_tokens}


def _sse(chunks: Iterator[dict]) -> StreamingResponse:
    """Server-sent events: one `data: <json>` per chunk, then `data: [DONE]` (OpenAI's streaming format)."""
    def lines():
        for c in chunks:
            yield f"data: {json.dumps(c)}\n\n"
        yield "data: [DONE]\n\n"
    return StreamingResponse(iterate_in_threadpool(lines()), media_type="text/event-stream")


def _chat_chunks(stream: Any, cid: str, model: str) -> Iterator[dict]:
    base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
    for piece in stream:
        yield {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
    c = stream.completion
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": c.finish_reason}], "usage": _usage(c)}


def _add_chat_route(app: FastAPI, llm: LLM) -> None:
    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        messages = [Message(m.role, m.text()) for m in req.messages]
        max_tokens = req.max_completion_tokens or req.max_tokens or 256
        cid, model = f"chatcmpl-{uuid.uuid4().hex[:12]}", llm.name
        if req.stream:
            if _schema(req.response_format) is not None:
                raise HTTPException(400, "streaming with response_format is not supported; set stream=false")
            stream = llm.stream(messages, max_tokens=max_tokens, temperature=req.temperature, stop=_stops(req.stop))
            return _sse(_chat_chunks(stream, cid, model))
        c = await run_in_threadpool(llm.generate, messages, max_tokens=max_tokens, temperature=req.temperature,
                                    stop=_stops(req.stop), json_schema=_schema(req.response_format))
        message: dict[str, Any] = {"role": "assistant", "content": c.text}
        if c.reasoning:
            message["reasoning_content"] = c.reasoning
        return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": c.finish_reason}], "usage": _usage(c)}


def _completion_chunks(stream: Any, cid: str, model: str) -> Iterator[dict]:
    for piece in stream:
        yield {"id": cid, "object": "text_completion", "model": model,
               "choices": [{"index": 0, "text": piece, "finish_reason": None}]}
    yield {"id": cid, "object": "text_completion", "model": model,
           "choices": [{"index": 0, "text": "", "finish_reason": stream.completion.finish_reason}]}


def _add_completion_route(app: FastAPI, llm: LLM) -> None:
    @app.post("/v1/completions")
    async def complete(req: CompletionRequest):
        cid = f"cmpl-{uuid.uuid4().hex[:12]}"
        if req.stream:
            stream = llm.stream(req.prompt, max_tokens=req.max_tokens, temperature=req.temperature,
                                stop=_stops(req.stop))
            return _sse(_completion_chunks(stream, cid, llm.name))
        c = await run_in_threadpool(llm.generate, req.prompt, max_tokens=req.max_tokens,
                                    temperature=req.temperature, stop=_stops(req.stop))
        return {"id": cid, "object": "text_completion", "created": int(time.time()), "model": llm.name,
                "choices": [{"index": 0, "text": c.text, "finish_reason": c.finish_reason}], "usage": _usage(c)}


def serve(llm: LLM, host: str = "127.0.0.1", port: int = 8080, log_level: str = "warning") -> None:
    import uvicorn

    uvicorn.run(create_app(llm), host=host, port=port, log_level=log_level)
