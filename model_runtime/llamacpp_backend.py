"""The `llamacpp` backend: a GGUF model run in process by llama-cpp-python."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import jsonschema

from model_runtime.base import (LLM, Completion, CompletionStream, Messages, parse_json_output, render_plain_prompt,
                                 to_messages)
from model_runtime.errors import CorruptModelError, ModelOutputError, ModelRuntimeError
from model_runtime.partial_json import breaks_schema


LLAMA_LOG = logging.getLogger("moesearch.llamacpp")
_log_callback = None  # kept referenced: llama.cpp calls it from C


def route_llama_logs() -> None:
    """Send llama.cpp's own log lines to the `moesearch.llamacpp` logger at DEBUG instead of stderr.

    llama-cpp-python's verbose=False still lets some through (e.g. "llama_kv_cache_iswa: using full-size SWA
    cache"); a user should see only our lines, and `moesearch ask --verbose` shows these too."""
    global _log_callback
    if _log_callback is not None:
        return
    import ctypes

    import llama_cpp
    import llama_cpp._logger  # noqa: F401 - it installs its own callback on import; ours must come after it

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        LLAMA_LOG.debug("%s", text.decode("utf-8", "replace").rstrip("\n"))

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    _log_callback = callback


class LlamaCppLLM(LLM):
    backend = "llamacpp"

    def __init__(self, model_path: str | Path, *, n_ctx: int = 8192, n_threads: int | None = None,
                 n_gpu_layers: int = 0, chat_template: str = "auto", name: str | None = None, seed: int = 0):
        from llama_cpp import Llama

        route_llama_logs()
        self.path = Path(model_path)
        self.name = name or self.path.name
        threads = n_threads or os.cpu_count() or 1
        try:
            self._llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                              n_gpu_layers=n_gpu_layers, seed=seed, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise CorruptModelError(f"llama.cpp could not load {self.path} ({e}); check the file or download it again") from e
        self._lock = threading.Lock()  # one llama.cpp context: calls from several threads take turns
        template = self._llm.metadata.get("tokenizer.chat_template")
        # Base models (like the embedded Gemma 3 270M) are prompted completion-style; chat models use their template.
        self.uses_chat_template = bool(template) and chat_template != "none"

    @property
    def context_window(self) -> int:
        return self._llm.n_ctx()

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._llm.metadata)

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def _grammar(self, json_schema: dict | None):
        if json_schema is None:
            return None
        from llama_cpp import LlamaGrammar

        return LlamaGrammar.from_json_schema(json.dumps(json_schema), verbose=False)

    def _prompt_tokens(self, messages: Messages, max_tokens: int) -> int:
        if self.uses_chat_template:
            # an estimate: the template adds a few tokens per message
            n = sum(self.count_tokens(m.content) + 8 for m in to_messages(messages))
        else:
            n = len(self.tokenize(render_plain_prompt(messages)))
        self._check_fits(n, max_tokens)
        return n

    def _chunks(self, messages: Messages, max_tokens: int, temperature: float, stop, grammar) -> Iterator[dict]:
        kwargs = dict(max_tokens=max_tokens, temperature=temperature, stop=list(stop or []), stream=True,
                      grammar=grammar)
        if self.uses_chat_template:
            msgs = [{"role": m.role, "content": m.content} for m in to_messages(messages)]
            for chunk in self._llm.create_chat_completion(messages=msgs, **kwargs):
                choice = chunk["choices"][0]
                yield {"text": choice["delta"].get("content") or "", "finish_reason": choice.get("finish_reason")}
        else:
            for chunk in self._llm.create_completion(prompt=render_plain_prompt(messages), **kwargs):
                choice = chunk["choices"][0]
                yield {"text": choice.get("text") or "", "finish_reason": choice.get("finish_reason")}

    def _run(self, messages, max_tokens, temperature, stop, json_schema) -> Iterator[tuple[str, str | None]]:
        grammar = self._grammar(json_schema)
        with self._lock:
            try:
                for c in self._chunks(messages, max_tokens, temperature, stop, grammar):
                    yield c["text"], c["finish_reason"]
            except RuntimeError as e:
                raise ModelRuntimeError(f"llama.cpp failed while generating ({e}); try a shorter prompt") from e

    def generate(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, json_schema: dict | None = None) -> Completion:
        started = time.perf_counter()
        n_prompt = self._prompt_tokens(messages, max_tokens)
        free_tokens = 0
        if json_schema is not None and temperature == 0.0 and json_schema.get("type") in ("object", "array"):
            text, free_tokens, kept = self._greedy_json_without_grammar(messages, max_tokens, stop, json_schema)
            if kept:
                return self._finish(text, prompt_tokens=n_prompt, completion_tokens=free_tokens,
                                    finish_reason="stop", started=started, json_schema=json_schema)
        pieces, finish, n = [], "stop", 0
        for text, reason in self._run(messages, max_tokens, temperature, stop, json_schema):
            if text:
                pieces.append(text)
                n += 1
            finish = reason or finish
        # the tokens of an abandoned unconstrained attempt count too: its time is in elapsed_s
        return self._finish("".join(pieces), prompt_tokens=n_prompt, completion_tokens=free_tokens + n,
                            finish_reason=finish, started=started, json_schema=json_schema)

    def _greedy_json_without_grammar(self, messages, max_tokens, stop, json_schema) -> tuple[str, int, bool]:
        """Greedy decoding without the grammar: (text, tokens, whether to keep it as the answer).

        llama.cpp checks the grammar against every token of the vocabulary at every step: about 60 ms a token for
        Gemma's 262k-token vocabulary on 2 cores, 3-5 times the cost of the token itself. The grammar is there to
        guarantee valid output; output that is valid already does not need it. So the unconstrained output is tried
        first, stopped as soon as its prefix breaks the schema (partial_json.breaks_schema), and kept if it ends as
        strict JSON the schema accepts; otherwise the constrained decoding runs as before."""
        opening = "{" if json_schema["type"] == "object" else "["
        validator = jsonschema.validators.validator_for(json_schema)(json_schema)
        decoder = json.JSONDecoder()  # strict: no raw control characters in strings, as the grammar forbids
        text, n = "", 0
        # closing() releases the model's lock when the attempt is abandoned midway, whatever the interpreter
        with contextlib.closing(self._run(messages, max_tokens, 0.0, stop, None)) as pieces:
            for piece, _ in pieces:
                text += piece
                n += 1 if piece else 0
                body = text.lstrip()
                if not body:
                    continue
                if not body.startswith(opening):
                    return text, n, False
                try:
                    value, end = decoder.raw_decode(body)
                except json.JSONDecodeError:
                    if breaks_schema(body, validator):
                        return text, n, False
                    continue
                return body[:end], n, validator.is_valid(value)
        # cut off (max_tokens or a stop sequence) while still on course: repaired as the grammar's output would be
        try:
            parse_json_output(text, json_schema)
        except ModelOutputError:
            return text, n, False
        return text.lstrip(), n, True

    def stream(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0,
               stop: Sequence[str] | None = None) -> CompletionStream:
        started = time.perf_counter()
        n_prompt = self._prompt_tokens(messages, max_tokens)
        state = {"n": 0, "finish": "stop"}

        def pieces():
            for text, reason in self._run(messages, max_tokens, temperature, stop, None):
                state["finish"] = reason or state["finish"]
                if text:
                    state["n"] += 1
                    yield text

        return CompletionStream(pieces(), lambda full: self._finish(
            full, prompt_tokens=n_prompt, completion_tokens=state["n"], finish_reason=state["finish"],
            started=started))

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.close()
