"""`TorchMoELLM`: the `LLM` interface on our engine (backend `torch`).

Prompt -> llama.cpp tokenizer -> prefill (reusing the KV cache for a shared prefix with the previous call) ->
decode token by token (greedy at temperature 0, else temperature + top-p sampling) -> incremental detokenization
that holds back partial UTF-8 and partial stop sequences.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from model_runtime.base import LLM, Completion, CompletionStream, Messages, render_plain_prompt, to_messages
from model_runtime.engine.loader import load_model
from model_runtime.engine.model import KVCache, Transformer
from model_runtime.engine.tokenizer import Tokenizer


def _utf8_prefix(b: bytes) -> str:
    """Decode the longest prefix of `b` that is complete UTF-8 (a multi-byte character may be split over tokens)."""
    for cut in range(len(b), max(-1, len(b) - 4), -1):
        try:
            return b[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return b.decode("utf-8", "replace")


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of `text` could be the start of a stop sequence."""
    hold = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                hold = max(hold, n)
                break
    return hold


class TorchMoELLM(LLM):
    backend = "torch"

    def __init__(self, model_path: str | Path, *, kernels: str = "cpu", device: str = "cpu", n_ctx: int = 8192,
                 n_threads: int | None = None, name: str | None = None, chat_template: str = "auto", seed: int = 0,
                 model: Transformer | None = None, prepared_cache_dir: Path | None = None):
        if n_threads:
            torch.set_num_threads(n_threads)
        self.path = Path(model_path)
        self.name = name or self.path.name
        if model is not None:  # an already loaded model of this file (tests, benchmarks)
            from model_runtime.engine.gguf_file import GGUFModelFile

            self.model, self._file = model, GGUFModelFile(self.path)
        else:
            self.model, self._file = load_model(self.path, kernels, device=device,
                                                  cache_dir=prepared_cache_dir)
        self.kernel_name = self.model.kernel.name
        self.device = self.model.device
        self.placement = None  # set by placement.load_placed_llm
        self.tokenizer = Tokenizer(self._file)
        self._file.close()  # the weights are prepared (the embedding rows stay mapped)
        self._n_ctx = max(16, min(int(n_ctx), self.model.cfg.context_length))
        self._cache: KVCache | None = None
        self._cache_tokens: list[int] = []
        self.reused_tokens = 0  # prompt tokens the last prefill took from the KV cache instead of computing
        self._lock = threading.Lock()
        self._gen = torch.Generator().manual_seed(seed)
        self.uses_chat_template = bool(self.tokenizer.chat_template) and chat_template != "none"

    @property
    def context_window(self) -> int:
        return self._n_ctx

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_bos=False, special=False))

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return self.tokenizer.encode(text, add_bos=add_bos)

    def _prompt(self, messages: Messages) -> list[int]:
        if self.uses_chat_template:
            text = self.tokenizer.render_chat([{"role": m.role, "content": m.content} for m in to_messages(messages)])
            if text is not None:
                return self.tokenizer.encode(text, add_bos=False)
        return self.tokenizer.encode(render_plain_prompt(messages))

    # core loop
    def prefill(self, tokens: list[int]) -> torch.Tensor:
        """Logits [V] after `tokens`, reusing the cached prefix of the previous call."""
        if self._cache is None:
            self._cache = self.model.new_cache(self._n_ctx)
        common = 0
        for a, b in zip(self._cache_tokens, tokens):
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)
        self._cache.n = common
        self._cache_tokens = list(tokens[:common])
        self.reused_tokens = common
        logits = self.model.forward(tokens[common:], self._cache)[-1].cpu()
        self._cache_tokens = list(tokens)
        return logits

    def step(self, token: int) -> torch.Tensor:
        logits = self.model.forward([token], self._cache)[-1].cpu()
        self._cache_tokens.append(token)
        return logits

    def sample(self, logits: torch.Tensor, temperature: float, top_p: float = 0.95) -> int:
        if temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.double() / temperature, -1)
        sp, si = torch.sort(probs, descending=True)
        keep = (torch.cumsum(sp, 0) - sp) < top_p
        sp = sp * keep
        return int(si[torch.multinomial(sp / sp.sum(), 1, generator=self._gen)])

    def tokens(self, prompt: list[int], max_tokens: int, temperature: float,
               state: dict | None = None) -> Iterator[int]:
        """Generated token ids (stops at an end-of-generation token or after max_tokens)."""
        self._check_fits(len(prompt), max_tokens)
        budget = min(max_tokens, self._n_ctx - len(prompt))
        logits = self.prefill(prompt)
        for i in range(budget):
            tok = self.sample(logits, temperature)
            if tok in self.tokenizer.eog:
                if state is not None:
                    state["finish"] = "stop"
                return
            yield tok
            if i + 1 < budget:
                logits = self.step(tok)

    def _run(self, messages, max_tokens, temperature, stop, state) -> Iterator[str]:
        stops = [s for s in (stop or []) if s]
        prompt = self._prompt(messages)
        state["prompt_tokens"] = len(prompt)
        with self._lock:
            out: list[int] = []
            emitted = 0
            state["finish"] = "length"
            for tok in self.tokens(prompt, max_tokens, temperature, state):
                out.append(tok)
                state["n"] = len(out)
                text = _utf8_prefix(self.tokenizer.decode_bytes(out))
                cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    if cut > emitted:
                        yield text[emitted:cut]
                    state["finish"] = "stop"
                    return
                safe = len(text) - _held_back(text, stops)
                if safe > emitted:
                    yield text[emitted:safe]
                    emitted = safe
            text = self.tokenizer.decode_bytes(out).decode("utf-8", "replace")
            if len(text) > emitted:
                yield text[emitted:]

    def generate(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, json_schema: dict | None = None) -> Completion:
        started = time.perf_counter()
        state = {"n": 0, "finish": "stop", "prompt_tokens": 0}
        text = "".join(self._run(messages, max_tokens, temperature, stop, state))
        return self._finish(text, prompt_tokens=state["prompt_tokens"], completion_tokens=state["n"],
                            finish_reason=state["finish"], started=started, json_schema=json_schema)

    def stream(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0,
               stop: Sequence[str] | None = None) -> CompletionStream:
        started = time.perf_counter()
        state = {"n": 0, "finish": "stop", "prompt_tokens": 0}
        self._check_fits(len(self._prompt(messages)), max_tokens)
        return CompletionStream(self._run(messages, max_tokens, temperature, stop, state), lambda full: self._finish(
            full, prompt_tokens=state["prompt_tokens"], completion_tokens=state["n"], finish_reason=state["finish"],
            started=started))

    def close(self) -> None:
        tok = getattr(self, "tokenizer", None)
        if tok is not None:
            tok.close()
        self._cache = None
