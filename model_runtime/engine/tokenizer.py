"""The tokenizer: llama.cpp's own, loaded vocabulary-only from the GGUF file.

Files of an architecture llama.cpp does not know (our `moesearch-hmoe`) get their tokenizer keys copied into a
small temporary GGUF of architecture `llama`, which llama.cpp loads vocabulary-only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from model_runtime.engine.gguf_file import GGUFModelFile
from model_runtime.errors import CorruptModelError

LLAMACPP_ARCHS = {"gemma3", "qwen2", "qwen2moe", "qwen3moe", "olmoe"}
_EOG_TEXTS = ("<end_of_turn>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>")


class Tokenizer:
    def __init__(self, f: GGUFModelFile):
        from llama_cpp import Llama

        self._tmp: Path | None = None
        path = f.path
        if f.arch not in LLAMACPP_ARCHS:
            self._tmp = path = _vocab_file(f)
        try:
            self._llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise CorruptModelError(f"llama.cpp could not read the tokenizer of {f.path.name} ({e})") from e
        finally:
            if self._tmp is not None:
                os.unlink(self._tmp)
        self.eos = self._llm.token_eos()
        self.bos = self._llm.token_bos()
        tokens = f.get("tokenizer.ggml.tokens", []) or []
        self.eog = {self.eos} | {i for i, s in enumerate(tokens) if s in _EOG_TEXTS}
        self.chat_template = f.get("tokenizer.chat_template", None)

    def encode(self, text: str, add_bos: bool = True, special: bool = True) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def decode_bytes(self, tokens: list[int]) -> bytes:
        return self._llm.detokenize(tokens)

    def render_chat(self, messages: list[dict]) -> str | None:
        if not self.chat_template:
            return None
        try:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            eos = self._llm.detokenize([self.eos], special=True).decode("utf-8", "ignore")
            bos = self._llm.detokenize([self.bos], special=True).decode("utf-8", "ignore") if self.bos >= 0 else ""
            return Jinja2ChatFormatter(self.chat_template, eos_token=eos, bos_token=bos)(messages=messages).prompt
        except Exception:
            return None

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.close()


def _vocab_file(f: GGUFModelFile) -> Path:
    import gguf

    from model_runtime.engine.hmoe import copy_tokenizer

    if "tokenizer.ggml.tokens" not in f.metadata:
        raise CorruptModelError(f"{f.path.name} has no tokenizer (tokenizer.ggml.tokens); the file is incomplete")
    fd, name = tempfile.mkstemp(suffix=".gguf", prefix="moesearch-vocab-")
    os.close(fd)
    w = gguf.GGUFWriter(name, "llama")
    n_tok = len(f.metadata["tokenizer.ggml.tokens"])
    w.add_context_length(4096)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(64)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(n_tok)
    copy_tokenizer(w, f.metadata)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(name)
