"""Search providers behind one interface: ``local`` (the corpus index, in process) and ``searxng`` (any
SearXNG-compatible JSON API over HTTP: a real SearXNG or ``moesearch web serve``)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone
from typing import Literal

import httpx

from .errors import BadQueryError, SearchUnavailableError, SearxngJSONDisabledError
from .settings import RetrievalSettings
from .text import normalize_url
from .types import Document, Hit, SearchResult

TimeRange = Literal["day", "week", "month", "year"]
TIME_RANGES = ("day", "week", "month", "year")
_RANGE_DAYS = {"day": 1, "week": 7, "month": 31, "year": 366}


def check_query(query: str, settings: RetrievalSettings, k: int, time_range: str | None) -> str:
    if not isinstance(query, str) or not query.strip():
        raise BadQueryError("empty query: give some words to search for")
    q = " ".join(query.split())
    if len(q) > settings.max_query_chars:
        raise BadQueryError(f"query too long ({len(q)} characters, at most {settings.max_query_chars}); shorten it")
    if not isinstance(k, int) or k < 1 or k > 100:
        raise BadQueryError(f"k must be between 1 and 100, not {k}")
    if time_range is not None and time_range not in TIME_RANGES:
        raise BadQueryError(f"time_range must be one of {', '.join(TIME_RANGES)}, not {time_range!r}")
    return q


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        d = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def within(published: str | None, time_range: str | None, now: datetime | None = None) -> bool:
    """True when ``published`` falls in ``time_range`` (unknown dates are kept)."""
    if time_range is None:
        return True
    d = _parse_date(published)
    if d is None:
        return True
    now = now or datetime.now(timezone.utc)
    return d >= now - timedelta(days=_RANGE_DAYS[time_range])


def merge_hits(hits: list[Hit], k: int) -> list[Hit]:
    """Merge hits with the same URL (the first keeps its place; engines are joined), then keep ``k``."""
    out: list[Hit] = []
    by_key: dict[str, Hit] = {}
    for h in hits:
        key = normalize_url(h.url)
        prev = by_key.get(key)
        if prev is None:
            by_key[key] = h
            out.append(h)
            continue
        if h.engine and prev.engine and h.engine not in prev.engine.split(","):
            prev.engine = f"{prev.engine},{h.engine}"
        prev.published = prev.published or h.published
        if len(h.snippet) > len(prev.snippet) and not prev.document:
            prev.snippet = h.snippet
        prev.score = max(prev.score, h.score)
    return out[:k]


class SearchProvider:
    """``search(query, k)`` / ``await asearch(query, k)`` -> ``SearchResult``."""

    name: str = "base"

    def __init__(self, settings: RetrievalSettings | None = None):
        self.settings = settings or RetrievalSettings()

    async def asearch(self, query: str, k: int = 5, *, time_range: TimeRange | None = None,
                      language: str | None = None) -> SearchResult:
        raise NotImplementedError

    def search(self, query: str, k: int = 5, *, time_range: TimeRange | None = None,
               language: str | None = None) -> SearchResult:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalSearchProvider(SearchProvider):
    """The local corpus index (built on first use). Hits carry the whole document."""

    name = "local"

    def __init__(self, settings: RetrievalSettings | None = None, *, index=None, mode: str = "fused",
                 progress: bool = False):
        super().__init__(settings)
        self._index = index
        self.mode = mode
        self.progress = progress
        self._lock = threading.Lock()

    @property
    def index(self):
        if self._index is None:
            with self._lock:
                if self._index is None:
                    from .index import CorpusIndex

                    self._index = CorpusIndex.open(self.settings, progress=self.progress)
        return self._index

    def search(self, query: str, k: int = 5, *, time_range: TimeRange | None = None,
               language: str | None = None) -> SearchResult:
        q = check_query(query, self.settings, k, time_range)
        idx = self.index
        want = k if time_range is None else k * 5
        hits = []
        for ref, doc in idx.search_docs(q, want, self.mode):
            if not within(doc.published, time_range):
                continue
            document = Document(url=doc.url, title=doc.title, text=doc.text, published=doc.published)
            hits.append(Hit(url=doc.url, title=doc.title, snippet=doc.text[ref.start:ref.end], score=ref.score,
                            published=doc.published, engine="local", document=document))
        return SearchResult(hits=merge_hits(hits, k), warnings=[])

    async def asearch(self, query: str, k: int = 5, *, time_range: TimeRange | None = None,
                      language: str | None = None) -> SearchResult:
        return await asyncio.to_thread(self.search, query, k, time_range=time_range, language=language)


class SearxngSearchProvider(SearchProvider):
    """A SearXNG instance's JSON API (``/search?q=...&format=json``)."""

    name = "searxng"

    def __init__(self, settings: RetrievalSettings | None = None, *, base_url: str | None = None):
        super().__init__(settings)
        url = base_url or self.settings.searxng_url
        if not url:
            raise SearchUnavailableError("no SearXNG URL: set MOESEARCH_SEARXNG_URL (e.g. http://127.0.0.1:8888) "
                                         "or use the local provider")
        if not url.startswith(("http://", "https://")):
            raise BadQueryError(f"SearXNG URL must start with http:// or https://, not {url!r}")
        self.base_url = url.rstrip("/")
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None

    def _params(self, q: str, time_range: str | None, language: str | None) -> dict[str, str]:
        params = {"q": q, "format": "json", "pageno": "1"}
        if time_range:
            params["time_range"] = time_range
        if language:
            params["language"] = language
        return params

    def _headers(self) -> dict[str, str]:
        return {"User-Agent": self.settings.user_agent, "Accept": "application/json"}

    def _error(self, e: Exception) -> SearchUnavailableError:
        if isinstance(e, httpx.TimeoutException):
            return SearchUnavailableError(f"SearXNG at {self.base_url} did not answer within "
                                          f"{self.settings.searxng_timeout_s:g}s; check that it is running")
        return SearchUnavailableError(f"cannot reach SearXNG at {self.base_url} ({type(e).__name__}); start it "
                                      "(e.g. `moesearch web serve` or docker compose up) or fix MOESEARCH_SEARXNG_URL")

    def _parse(self, r: httpx.Response, k: int) -> SearchResult:
        if r.status_code == 403:
            raise SearxngJSONDisabledError(
                f"SearXNG at {self.base_url} refused JSON output (HTTP 403): add `json` to `search.formats` in its "
                "settings.yml (formats: [html, json]) and restart it")
        if r.status_code == 429:
            raise SearchUnavailableError(f"SearXNG at {self.base_url} is rate limiting (HTTP 429); wait, or "
                                         "disable its limiter for local use")
        if r.status_code != 200:
            raise SearchUnavailableError(f"SearXNG at {self.base_url} answered HTTP {r.status_code}; check its logs")
        try:
            data = r.json()
            results = data.get("results", [])
        except (ValueError, AttributeError):
            raise SearchUnavailableError(f"SearXNG at {self.base_url} did not return JSON; is the URL a SearXNG "
                                         "instance?") from None
        hits = []
        for res in results:
            if not isinstance(res, dict) or not res.get("url"):
                continue
            engines = res.get("engines") or ([res["engine"]] if res.get("engine") else [])
            hits.append(Hit(url=str(res["url"]), title=str(res.get("title") or res["url"]),
                            snippet=str(res.get("content") or ""), score=float(res.get("score") or 0.0),
                            published=res.get("publishedDate") or res.get("pubdate") or None,
                            engine=",".join(engines) or None))
        warnings = []
        for item in data.get("unresponsive_engines") or []:
            if isinstance(item, (list, tuple)) and item:
                name = item[0]
                why = item[1] if len(item) > 1 else "no answer"
                warnings.append(f"search engine {name} did not respond: {why}")
            else:
                warnings.append(f"search engine {item} did not respond")
        return SearchResult(hits=merge_hits(hits, k), warnings=warnings)

    def search(self, query: str, k: int = 5, *, time_range: TimeRange | None = None,
               language: str | None = None) -> SearchResult:
        q = check_query(query, self.settings, k, time_range)
        if self._client is None:
            self._client = httpx.Client(timeout=self.settings.searxng_timeout_s, trust_env=False)
        try:
            r = self._client.get(self.base_url + "/search", params=self._params(q, time_range, language),
                                 headers=self._headers())
        except httpx.HTTPError as e:
            raise self._error(e) from None
        return self._parse(r, k)

    async def asearch(self, query: str, k: int = 5, *, time_range: TimeRange | None = None,
                      language: str | None = None) -> SearchResult:
        q = check_query(query, self.settings, k, time_range)
        client = self._async_client()
        try:
            r = await client.get(self.base_url + "/search", params=self._params(q, time_range, language),
                                        headers=self._headers())
        except httpx.HTTPError as e:
            raise self._error(e) from None
        return self._parse(r, k)

    def _async_client(self) -> httpx.AsyncClient:
        """An async client bound to the running event loop: a client made under an earlier loop (an earlier
        ``asyncio.run``) cannot be used once that loop has closed, so each loop gets its own."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            self._aclient = httpx.AsyncClient(timeout=self.settings.searxng_timeout_s, trust_env=False)
            self._aclient_loop = loop
        return self._aclient

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        self.close()
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None


def make_provider(settings: RetrievalSettings | None = None) -> SearchProvider:
    """The provider ``settings.search_provider`` names."""
    settings = settings or RetrievalSettings()
    if settings.search_provider == "searxng":
        return SearxngSearchProvider(settings)
    return LocalSearchProvider(settings)
