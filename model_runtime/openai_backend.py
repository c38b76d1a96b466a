"""The `openai` backend: any OpenAI-compatible chat-completions server (llama.cpp server, vLLM, SGLang, ours)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence

import httpx

from model_runtime.base import LLM, Completion, CompletionStream, Messages, to_messages
from model_runtime.errors import ServerResponseError, ServerUnreachableError


class OpenAICompatLLM(LLM):
    backend = "openai"

    def __init__(self, base_url: str, *, model: str | None = None, api_key: str = "none", timeout_s: float = 120.0,
                 retries: int = 2, context_window: int | None = None):
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self._client = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
        )
        info = self._server_model(model)
        self.name = info.get("id") or model or "unknown"
        meta = info.get("meta") or {}
        self._context_window = (context_window or info.get("context_window") or meta.get("n_ctx_train")
                                or info.get("max_model_len") or 8192)

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One request with retries on connection errors, 429 and 5xx."""
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                r = self._client.request(method, path, **kwargs)
            except httpx.TransportError as e:
                if attempt == self.retries:
                    raise ServerUnreachableError(
                        f"cannot reach the model server at {self.base_url} ({type(e).__name__}); start it with "
                        "`moesearch model serve` or fix --openai-url / MOESEARCH_OPENAI_URL"
                    ) from e
            else:
                if r.status_code < 400:
                    return r
                if r.status_code not in (429, 500, 502, 503, 504) or attempt == self.retries:
                    raise ServerResponseError(
                        f"the model server at {self.base_url} answered HTTP {r.status_code}: "
                        f"{' '.join(r.text[:300].split())}; check the server's log and the model name"
                    )
                delay = float(r.headers.get("retry-after", delay))
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _server_model(self, wanted: str | None) -> dict:
        models = self._request("GET", "/models").json().get("data") or []
        if wanted:
            return next((m for m in models if m.get("id") == wanted), {"id": wanted})
        if not models:
            raise ServerResponseError(f"the model server at {self.base_url} lists no models; pass --openai-model")
        return models[0]

    @property
    def context_window(self) -> int:
        return int(self._context_window)

    def count_tokens(self, text: str) -> int:
        # Servers rarely expose a tokenizer; ~4 characters per token is the usual estimate for English.
        try:
            r = self._client.post(self.base_url.removesuffix("/v1") + "/tokenize", json={"content": text})
            if r.status_code == 200 and "tokens" in r.json():
                return len(r.json()["tokens"])
        except (httpx.HTTPError, ValueError):
            pass
        return max(1, len(text) // 4)

    def _body(self, messages, max_tokens, temperature, stop, json_schema, stream) -> dict:
        body = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in to_messages(messages)],
            "max_tokens": max_tokens, "temperature": temperature, "stream": stream,
        }
        if stop:
            body["stop"] = list(stop)
        if json_schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": json_schema, "strict": True}}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def generate(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, json_schema: dict | None = None) -> Completion:
        started = time.perf_counter()
        data = self._request("POST", "/chat/completions",
                             json=self._body(messages, max_tokens, temperature, stop, json_schema, False)).json()
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError) as e:
            raise ServerResponseError(f"the model server at {self.base_url} sent an unexpected reply: {str(data)[:200]}") from e
        usage = data.get("usage") or {}
        reasoning = choice["message"].get("reasoning_content")
        c = self._finish(text, prompt_tokens=usage.get("prompt_tokens", 0),
                         completion_tokens=usage.get("completion_tokens", 0),
                         finish_reason=choice.get("finish_reason") or "stop", started=started, json_schema=json_schema)
        c.reasoning = c.reasoning or reasoning
        return c

    def stream(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0,
               stop: Sequence[str] | None = None) -> CompletionStream:
        started = time.perf_counter()
        body = self._body(messages, max_tokens, temperature, stop, None, True)
        state = {"usage": {}, "finish": "stop", "n": 0}

        def pieces() -> Iterator[str]:
            try:
                with self._client.stream("POST", "/chat/completions", json=body) as r:
                    if r.status_code >= 400:
                        r.read()
                        raise ServerResponseError(
                            f"the model server at {self.base_url} answered HTTP {r.status_code}: {' '.join(r.text[:300].split())}")
                    for line in r.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == "[DONE]":
                            break
                        event = json.loads(payload)
                        state["usage"] = event.get("usage") or state["usage"]
                        for choice in event.get("choices") or []:
                            state["finish"] = choice.get("finish_reason") or state["finish"]
                            piece = (choice.get("delta") or {}).get("content")
                            if piece:
                                state["n"] += 1
                                yield piece
            except httpx.TransportError as e:
                raise ServerUnreachableError(
                    f"lost the model server at {self.base_url} ({type(e).__name__}); check that it is running") from e

        return CompletionStream(pieces(), lambda full: self._finish(
            full, prompt_tokens=state["usage"].get("prompt_tokens", 0),
            completion_tokens=state["usage"].get("completion_tokens", state["n"]), finish_reason=state["finish"],
            started=started))

    def close(self) -> None:
        self._client.close()
