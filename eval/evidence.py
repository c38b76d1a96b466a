"""Where the agent's evidence comes from during an evaluation, and snapshots of it.

- A dataset with context paragraphs is served as a local web (`retrieval.LocalWeb`, real HTTP on 127.0.0.1): one
  page per paragraph at ``/wiki/<quoted title>`` and a SearXNG-compatible search endpoint, so the agent searches,
  fetches and reads exactly as it does on the real web.
- Every search result and every page the agent used is recorded in a snapshot (JSON lines, appended and flushed as
  they happen, so a killed run keeps what it recorded). `--replay SNAPSHOT` serves exactly that evidence offline:
  a search asked before returns the recorded hits; a search not asked before is answered from the snapshot's own
  pool of hits (ranked by word overlap with the query, with a warning), and a page not in the snapshot is a 404.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from eval.datasets import Dataset
from eval.errors import SnapshotError

SNAPSHOT_VERSION = 1


# ----------------------------------------------------------------------------------------------- the local web
def web_documents(dataset: Dataset) -> list[Any]:
    """The dataset's context paragraphs as `retrieval.Document`s (one page per title, first occurrence kept)."""
    from retrieval import Document

    return [Document(url=title_url(title), title=title, text=text) for title, text in dataset.paragraphs()]


def title_url(title: str, base: str = "http://127.0.0.1") -> str:
    """The URL the local web serves a title at (Wikipedia style: spaces as underscores, then percent-quoted)."""
    from urllib.parse import quote

    return f"{base}/wiki/" + quote(title.replace(" ", "_"), safe="()',-.!*_")


def title_from_url(url: str) -> str | None:
    """The page title a local-web URL names (``/wiki/<quoted title>``), else None."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    m = re.match(r"^/wiki/(.+)$", path)
    return unquote(m.group(1)).replace("_", " ") if m else None


# ------------------------------------------------------------------------------------------- (de)serialising
def to_jsonable(obj: Any) -> Any:
    """Dataclasses, pydantic models, bytes, datetimes and containers as plain JSON values."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, bytes):
        return {"__bytes__": base64.b64encode(obj).decode("ascii")}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if hasattr(obj, "model_dump"):
        return to_jsonable(obj.model_dump())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "items"):  # httpx.Headers and friends
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__bytes__"}:
            return base64.b64decode(value["__bytes__"])
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def _build(cls: type, data: dict[str, Any]) -> Any:
    """An instance of `cls` from a dict, keeping only the fields `cls` knows."""
    if dataclasses.is_dataclass(cls):
        names = {f.name for f in dataclasses.fields(cls)}
    elif hasattr(cls, "model_fields"):
        names = set(cls.model_fields)
    else:
        return cls(**data)
    return cls(**{k: v for k, v in data.items() if k in names})


def _retrieval_types() -> dict[str, type]:
    import retrieval

    types: dict[str, type] = {}
    for name in ("Hit", "SearchResult", "Page", "Document"):
        cls = getattr(retrieval, name, None)
        if cls is None:
            for mod in ("retrieval.types", "retrieval.search", "retrieval.providers", "retrieval.fetcher",
                        "retrieval.corpus", "retrieval.localweb"):
                try:
                    m = __import__(mod, fromlist=[name])
                except ImportError:
                    continue
                cls = getattr(m, name, None)
                if cls is not None:
                    break
        if cls is not None:
            types[name] = cls
    return types


def search_key(query: str, k: int, time_range: str | None, language: str | None) -> str:
    return json.dumps([" ".join(query.split()), int(k), time_range, language])


# ----------------------------------------------------------------------------------------------- the snapshot
class Snapshot:
    """A JSON-lines file of {"kind": "search" | "page", ...} records; appended as evidence is used."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.searches: dict[str, dict[str, Any]] = {}
        self.pages: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._fh = None
        self.skipped_lines: list[int] = []
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a record cut short by a killed run; the resumed run redid it
                self.skipped_lines.append(lineno)
                continue
            if not isinstance(rec, dict):
                raise SnapshotError(f"{self.path}: line {lineno} is not a snapshot record; give a snapshot file "
                                    "written by `moesearch eval run`")
            if rec.get("kind") == "search":  # the last record wins: it is what the scored answer used
                self.searches[rec["key"]] = rec
            elif rec.get("kind") == "page":
                self.pages[rec["url"]] = rec

    @classmethod
    def open_for_replay(cls, path: str | Path) -> "Snapshot":
        p = Path(path).expanduser()
        if not p.is_file():
            raise SnapshotError(f"no snapshot at {p}; give the path printed by the run that recorded it "
                                "(see `moesearch eval list`)")
        snap = cls(p)
        if not snap.searches and not snap.pages:
            raise SnapshotError(f"snapshot {p} is empty; record it with a run that searches (mode quick or deep)")
        return snap

    def _append(self, rec: dict[str, Any]) -> None:
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                cut = self.path.exists() and self.path.stat().st_size > 0 and not self.path.read_bytes().endswith(b"\n")
                self._fh = self.path.open("a", encoding="utf-8")
                if cut:  # a killed run left half a record: start on a fresh line
                    self._fh.write("\n")
            self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self._fh.flush()

    def record_search(self, query: str, k: int, time_range: str | None, language: str | None, result: Any) -> None:
        key = search_key(query, k, time_range, language)
        hits = [to_jsonable(h) for h in getattr(result, "hits", [])]
        warnings = list(getattr(result, "warnings", []) or [])
        old = self.searches.get(key)
        if old is not None and old["hits"] == hits and old["warnings"] == warnings:
            return
        rec = {"kind": "search", "key": key, "query": query, "k": k, "time_range": time_range,
               "language": language, "t": time.time(), "hits": hits, "warnings": warnings}
        self.searches[key] = rec
        self._append(rec)

    def record_page(self, page: Any, requested_url: str) -> None:
        data = to_jsonable(page)
        url = requested_url
        old = self.pages.get(url)
        if old is not None and all(old["page"].get(k) == data.get(k) for k in ("url", "status", "body")):
            return
        rec = {"kind": "page", "url": url, "page": data, "t": time.time()}
        self.pages[url] = rec
        self._append(rec)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    # replay side
    def search_result(self, query: str, k: int, time_range: str | None, language: str | None) -> Any:
        types = _retrieval_types()
        rec = self.searches.get(search_key(query, k, time_range, language))
        warnings: list[str] = []
        if rec is None:  # the same query with another k, else the pooled hits ranked by overlap
            same_q = [r for r in self.searches.values() if " ".join(r["query"].split()) == " ".join(query.split())]
            if same_q:
                hits = sorted(same_q, key=lambda r: -r["k"])[0]["hits"][:k]
            else:
                hits = self._pooled(query, k)
                warnings.append("replay: this query is not in the snapshot; hits ranked from the snapshot's pool")
        else:
            hits = rec["hits"][:k]
            warnings.extend(rec.get("warnings") or [])
        return _build(types["SearchResult"], {"hits": [self._hit(h, types) for h in hits], "warnings": warnings})

    def _pooled(self, query: str, k: int) -> list[dict[str, Any]]:
        q = set(_terms(query))
        pool: dict[str, dict[str, Any]] = {}
        for r in self.searches.values():
            for h in r["hits"]:
                pool.setdefault(h.get("url", ""), h)
        scored = []
        for h in pool.values():
            terms = set(_terms(f"{h.get('title', '')} {h.get('snippet', '')}"))
            overlap = len(q & terms)
            if overlap:
                scored.append((-overlap, h.get("url", ""), h))
        return [h for _, _, h in sorted(scored, key=lambda x: (x[0], x[1]))[:k]]

    @staticmethod
    def _hit(data: dict[str, Any], types: dict[str, type]) -> Any:
        data = from_jsonable(dict(data))
        doc = data.get("document")
        if isinstance(doc, dict) and "Document" in types:
            data["document"] = _build(types["Document"], doc)
        return _build(types["Hit"], data)

    def page(self, url: str) -> Any:
        types = _retrieval_types()
        rec = self.pages.get(url)
        if rec is None:
            data = {"url": url, "requested_url": url, "status": 404, "content_type": "text/plain",
                    "body": b"not in the replay snapshot", "headers": {}, "fetched_at": time.time(),
                    "from_cache": True, "elapsed_s": 0.0}
        else:
            data = from_jsonable(dict(rec["page"]))
            data["from_cache"] = True
            data["elapsed_s"] = 0.0
        return _build(types["Page"], data)


_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"the", "a", "an", "of", "in", "on", "and", "or", "to", "is", "was", "what", "who", "which", "when",
         "where", "how", "for", "by", "with", "as", "at", "from", "did", "does", "do", "that", "this"}


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


# --------------------------------------------------------------------------------------- wrapping the agent's I/O
class RecordingProvider:
    """A search provider that records every result it returns into a snapshot."""

    def __init__(self, inner: Any, snapshot: Snapshot):
        self._inner = inner
        self._snapshot = snapshot
        self.name = getattr(inner, "name", "provider")

    async def asearch(self, query: str, k: int = 5, *, time_range: str | None = None,
                      language: str | None = None) -> Any:
        result = await self._inner.asearch(query, k, time_range=time_range, language=language)
        self._snapshot.record_search(query, k, time_range, language, result)
        return result

    def search(self, query: str, k: int = 5, *, time_range: str | None = None, language: str | None = None) -> Any:
        result = self._inner.search(query, k, time_range=time_range, language=language)
        self._snapshot.record_search(query, k, time_range, language, result)
        return result

    async def aclose(self) -> None:
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ReplayProvider:
    """Answers searches from a snapshot only; no network."""

    def __init__(self, snapshot: Snapshot):
        self._snapshot = snapshot
        self.name = "replay"
        self.calls: list[str] = []

    async def asearch(self, query: str, k: int = 5, *, time_range: str | None = None,
                      language: str | None = None) -> Any:
        return self.search(query, k, time_range=time_range, language=language)

    def search(self, query: str, k: int = 5, *, time_range: str | None = None, language: str | None = None) -> Any:
        self.calls.append(query)
        return self._snapshot.search_result(query, k, time_range, language)

    async def aclose(self) -> None:
        return None


class RecordingFetcher:
    """Wraps a fetcher (an async context manager with ``fetch(url)``) and records every page it returns."""

    def __init__(self, inner: Any, snapshot: Snapshot):
        self._inner = inner
        self._snapshot = snapshot
        self._entered = inner

    async def __aenter__(self) -> "RecordingFetcher":
        self._entered = await self._inner.__aenter__() or self._inner
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._inner.__aexit__(*exc)

    async def fetch(self, url: str, *args: Any, **kwargs: Any) -> Any:
        page = await self._entered.fetch(url, *args, **kwargs)
        self._snapshot.record_page(page, url)
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._entered, name)


class ReplayFetcher:
    """Serves pages from a snapshot only; a page the snapshot lacks is a 404."""

    def __init__(self, snapshot: Snapshot):
        self._snapshot = snapshot

    async def __aenter__(self) -> "ReplayFetcher":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    async def fetch(self, url: str, *args: Any, **kwargs: Any) -> Any:
        return self._snapshot.page(url)


def recording_factory(factory: Callable[[], Any], snapshot: Snapshot) -> Callable[[], RecordingFetcher]:
    return lambda: RecordingFetcher(factory(), snapshot)


def replay_factory(snapshot: Snapshot) -> Callable[[], ReplayFetcher]:
    return lambda: ReplayFetcher(snapshot)
