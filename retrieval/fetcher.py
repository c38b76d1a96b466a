"""The fetcher: async httpx with an SSRF guard, limits, retries, robots.txt and an SQLite cache.

Every URL (given, or a redirect's Location) is parsed as browsers parse it (``check_url``: WHATWG URL, so
``http://0177.0.0.1/`` is 127.0.0.1), and what does not parse is our ``InvalidURLError``. The SSRF guard sits in the
network layer: every TCP connection resolves the host itself, refuses it when any address is on the deny-list
(``addresses.py``: not global, or a special-purpose range; IPv4 embedded in IPv6 judged by itself), and connects to
the very address it checked, so DNS rebinding cannot slip past. Redirects are followed by hand, one hop at a time,
and every hop goes through the same checks. Only the SearXNG origin the user configured and ``fetch_allow_hosts``
may be private. A body whose Content-Type says nothing is sniffed from its bytes (``sniff.py``)."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
import zlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import httpcore

from .addresses import ip_is_forbidden, parse_ip as _parse_ip
from .errors import (BlockedURLError, FetchError, FetchNetworkError, FetchTimeoutError, HTTPStatusError,
                     InvalidURLError, RobotsDisallowedError, TooLargeError, TooManyRedirectsError,
                     UnsupportedContentError)
from .robots import ROBOTS_MAX_BYTES, ROBOTS_MAX_REDIRECTS, RobotsRules
from .settings import RetrievalSettings
from .sniff import UNINFORMATIVE_TYPES, sniff
from .types import Page

ALLOWED_TYPES = {
    "text/html", "application/xhtml+xml", "text/plain", "text/markdown", "text/x-markdown", "application/pdf",
    "application/json",
}
RETRY_STATUSES = {429, 500, 502, 503, 504}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}


class _Allow:
    def __init__(self, settings: RetrievalSettings):
        self.origins = settings.allowed_origins()

    def __call__(self, host: str, port: int | None) -> bool:
        host = host.lower().strip("[]")
        return (host, port) in self.origins or (host, None) in self.origins


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks and connects to the checked address."""

    def __init__(self, allow: _Allow):
        from httpcore._backends.auto import AutoBackend

        self._inner = AutoBackend()
        self._allow = allow

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        if self._allow(host, port):
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        literal = _parse_ip(host)
        if literal is not None:
            addrs = [str(literal)]
        else:
            loop = asyncio.get_running_loop()
            try:
                infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
            except (socket.gaierror, UnicodeError) as e:
                raise FetchNetworkError(f"cannot resolve host {host}") from e
            except asyncio.TimeoutError as e:
                raise FetchTimeoutError(f"DNS lookup of {host} timed out") from e
            addrs = list(dict.fromkeys(info[4][0] for info in infos))
        if not addrs:
            raise FetchNetworkError(f"cannot resolve host {host}")
        for a in addrs:
            ip = _parse_ip(a)
            if ip is None or ip_is_forbidden(ip):
                raise BlockedURLError(f"blocked: {host} resolves to a non-public address ({a})")
        last: Exception | None = None
        for a in addrs:
            try:
                return await self._inner.connect_tcp(a, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args, **kwargs):  # pragma: no cover - never used
        raise BlockedURLError("blocked: unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


_LOCATION = "x-moesearch-location"


async def _hide_location(response: httpx.Response) -> None:
    """Move a redirect's Location out of httpx's sight: httpx parses it even with redirects off, and a Location
    such as ``javascript:...`` or ``data:...`` made it raise ``InvalidURL`` before we could refuse the target. We
    resolve and check every Location ourselves (``check_url``)."""
    if "location" in response.headers:
        response.headers[_LOCATION] = response.headers["location"]
        del response.headers["location"]


class _Decoder:
    """Decompresses a body while bounding its decompressed size (compression bombs stop at the limit)."""

    def __init__(self, encoding: str, limit: int, url: str):
        enc = (encoding or "identity").strip().lower()
        self.limit, self.url, self.total = limit, url, 0
        self.chunks: list[bytes] = []
        if enc in ("identity", ""):
            self._d = None
        elif enc in ("gzip", "x-gzip"):
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._d = zlib.decompressobj()
            self._deflate_probe = True
        else:
            raise UnsupportedContentError(f"unsupported content encoding {enc!r}", url)
        self._enc = enc

    def _add(self, out: bytes) -> None:
        self.total += len(out)
        if self.total > self.limit:
            raise TooLargeError(f"page larger than {self.limit:,} bytes (decompressed)", self.url)
        self.chunks.append(out)

    def feed(self, data: bytes) -> None:
        if self._d is None:
            self._add(data)
            return
        try:
            while data:
                out = self._d.decompress(data, self.limit - self.total + 1)
                self._add(out)
                data = self._d.unconsumed_tail
        except zlib.error:
            if self._enc == "deflate" and self.total == 0 and getattr(self, "_deflate_probe", False):
                self._deflate_probe = False
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send
                self.feed(data)
                return
            raise FetchNetworkError("corrupt compressed body", self.url) from None

    def finish(self) -> bytes:
        if self._d is not None:
            try:
                self._add(self._d.flush())
            except zlib.error:
                raise FetchNetworkError("corrupt compressed body", self.url) from None
        return b"".join(self.chunks)


def _main_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


sniff_type = sniff  # the older name


def _content_type(header: str, body: bytes, url: str) -> str:
    """The page's content type: the header's, or, when it says nothing, the one its bytes show (as in a browser).
    Raises ``UnsupportedContentError`` when the bytes are of a type we do not read."""
    if _main_type(header) not in UNINFORMATIVE_TYPES:
        return header
    sniffed = sniff(body)
    if sniffed not in ALLOWED_TYPES:
        served = f"served as {_main_type(header)}" if _main_type(header) else "served without a type"
        what = "binary data" if sniffed == "application/octet-stream" else sniffed
        raise UnsupportedContentError(f"unsupported content: {what} by its bytes, {served}", url)
    return sniffed


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _cache_key(url: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme.lower(), p.netloc.lower(), p.path or "/", p.query, ""))


def _printable(text: str, n: int = 100) -> str:
    """``text`` for a one-line message: cut at ``n`` characters, control characters escaped."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:n])
    return out + ("..." if len(text) > n else "")


def _short(url: str, n: int = 80) -> str:
    return f"'{_printable(url, n)}'"


def check_url(url: str, allow: _Allow | None = None, base: str | None = None) -> str:
    """The URL as a browser would request it (WHATWG URL parsing, ``ada_url``: IDNA hosts in punycode, IPv4 in
    every notation a browser accepts, ``0177.0.0.1`` included, made dotted-decimal), resolved against ``base``
    when given (a redirect's Location). Refuses anything but http(s) with a host, and literal non-public IPs unless
    allowed. Raises ``InvalidURLError`` for what does not parse, ``BlockedURLError`` for what is refused."""
    from ada_url import URL

    if not isinstance(url, str) or not url.strip():
        raise BlockedURLError("blocked: empty URL", url if isinstance(url, str) else None)
    try:
        parsed = URL(url.strip(), base) if base else URL(url.strip())
    except (ValueError, UnicodeError):
        raise InvalidURLError(f"blocked: invalid URL {_short(url)}: it does not parse (check the host, the port "
                              "and any brackets)", url) from None
    scheme = parsed.protocol.rstrip(":").lower()
    if scheme not in ("http", "https"):
        raise BlockedURLError(f"blocked: only http and https URLs are fetched, not {scheme or 'no scheme'}", url)
    host = parsed.hostname
    if not host:
        raise BlockedURLError("blocked: URL has no host", url)
    try:
        httpx.URL(parsed.href).host  # what the client sends must pass httpx too: IDNA 2008, stricter than browsers
    except (httpx.InvalidURL, ValueError, UnicodeError) as e:
        raise InvalidURLError(f"blocked: invalid URL {_short(url)}: the host is not a valid domain name "
                              f"({_printable(str(e)) or type(e).__name__})", url) from None
    port = int(parsed.port) if parsed.port else (443 if scheme == "https" else 80)
    ip = _parse_ip(host)
    if ip is not None and ip_is_forbidden(ip) and not (allow and allow(host, port)):
        raise BlockedURLError(f"blocked: {host.strip('[]')} is a non-public address", url)
    return parsed.href


class Fetcher:
    """``async with Fetcher() as f: page = await f.fetch(url)``; raises ``FetchError`` subclasses."""

    def __init__(self, settings: RetrievalSettings | None = None, *, cache: bool | None = None):
        self.settings = settings or RetrievalSettings()
        self._allow = _Allow(self.settings)
        self._use_cache = self.settings.fetch_cache if cache is None else cache
        self._cache = None
        self._client: httpx.AsyncClient | None = None
        self._global: asyncio.Semaphore | None = None
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._robots: dict[str, RobotsRules] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}

    # ---------- lifecycle ----------
    def _ensure(self) -> httpx.AsyncClient:
        if self._client is None:
            s = self.settings
            timeout = httpx.Timeout(connect=s.fetch_timeout_connect_s, read=s.fetch_timeout_read_s,
                                    write=s.fetch_timeout_read_s, pool=s.fetch_timeout_total_s)
            transport = httpx.AsyncHTTPTransport(retries=0)
            transport._pool = httpcore.AsyncConnectionPool(  # the guarded network layer
                ssl_context=httpx.create_ssl_context(), max_connections=s.fetch_max_concurrency * 2,
                max_keepalive_connections=s.fetch_max_concurrency, keepalive_expiry=5.0,
                network_backend=GuardedBackend(self._allow))
            self._client = httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False,
                                             trust_env=False, headers={"User-Agent": s.user_agent},
                                             event_hooks={"response": [_hide_location]})
            self._global = asyncio.Semaphore(s.fetch_max_concurrency)
        if self._use_cache and self._cache is None:
            from .cache import FetchCache

            self._cache = FetchCache(self.settings.db, self.settings.cache_ttl_s)
        return self._client

    async def __aenter__(self) -> "Fetcher":
        self._ensure()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _host_sem(self, host: str) -> asyncio.Semaphore:
        sem = self._hosts.get(host)
        if sem is None:
            sem = self._hosts[host] = asyncio.Semaphore(self.settings.fetch_per_host_concurrency)
        return sem

    # ---------- one request ----------
    async def _request(self, url: str, headers: dict[str, str], max_bytes: int,
                       check_type: bool) -> tuple[int, dict[str, str], bytes, str | None]:
        """One GET (no redirects followed): status, headers, decompressed body, redirect target."""
        client = self._ensure()
        host = (urlsplit(url).hostname or "").lower()
        assert self._global is not None
        async with self._global, self._host_sem(host):
            try:
                async with client.stream("GET", url, headers={"Accept-Encoding": "gzip, deflate", **headers}) as r:
                    hdrs = {k.lower(): v for k, v in r.headers.items()}
                    if r.status_code in REDIRECT_STATUSES and _LOCATION in hdrs:
                        return r.status_code, hdrs, b"", hdrs[_LOCATION]
                    if r.status_code != 200:
                        return r.status_code, hdrs, b"", None
                    ctype = _main_type(hdrs.get("content-type", ""))
                    if check_type and ctype not in ALLOWED_TYPES and ctype not in UNINFORMATIVE_TYPES:
                        raise UnsupportedContentError(f"unsupported content type {ctype}", url)
                    length = hdrs.get("content-length", "")
                    if length.isdigit() and "content-encoding" not in hdrs and int(length) > max_bytes:
                        raise TooLargeError(f"page larger than {max_bytes:,} bytes ({int(length):,})", url)
                    dec = _Decoder(hdrs.get("content-encoding", ""), max_bytes, url)
                    async for raw in r.aiter_raw():
                        dec.feed(raw)
                    return r.status_code, hdrs, dec.finish(), None
            except FetchError as e:
                if e.url is None:
                    e.url = url
                raise
            except (httpx.InvalidURL, UnicodeError) as e:  # check_url let through what httpx cannot send
                raise InvalidURLError(f"blocked: invalid URL {_short(url)}: {_printable(str(e)) or type(e).__name__}",
                                      url) from None
            except httpx.ConnectTimeout as e:
                raise FetchTimeoutError(f"connect timeout ({self.settings.fetch_timeout_connect_s:g}s) to {host}",
                                        url) from e
            except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as e:
                raise FetchTimeoutError(f"read timeout ({self.settings.fetch_timeout_read_s:g}s) from {host}",
                                        url) from e
            except httpx.ConnectError as e:
                raise FetchNetworkError(f"cannot connect to {host}: {str(e) or type(e).__name__}", url) from e
            except (httpx.HTTPError, httpcore.ProtocolError) as e:
                raise FetchNetworkError(f"transfer from {host} failed: {str(e) or type(e).__name__}", url) from e

    async def _request_with_retries(self, url: str, headers: dict[str, str], max_bytes: int, check_type: bool):
        s = self.settings
        attempt = 0
        while True:
            status, hdrs, body, location = await self._request(url, headers, max_bytes, check_type)
            if status not in RETRY_STATUSES or attempt >= s.fetch_retries:
                return status, hdrs, body, location
            wait = _retry_after(hdrs.get("retry-after"))
            if wait is None:
                wait = s.fetch_backoff_s * (2 ** attempt)
            await asyncio.sleep(min(wait, s.fetch_max_retry_after_s))
            attempt += 1

    # ---------- robots.txt ----------
    async def _robots_check(self, url: str) -> None:
        """Raise ``RobotsDisallowedError`` when the origin's robots.txt (fetched once per Fetcher) forbids ``url``."""
        p = urlsplit(url)
        origin = f"{p.scheme}://{p.netloc}"
        lock = self._robots_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self._robots:
                self._robots[origin] = await self._load_robots(origin)
        rules = self._robots[origin]
        if not rules.allows(url):
            why = rules.disallow_all_reason or "disallows this URL"
            raise RobotsDisallowedError(f"robots.txt of {p.hostname} {why}", url)

    async def _load_robots(self, origin: str) -> RobotsRules:
        url = origin + "/robots.txt"
        try:
            for _ in range(ROBOTS_MAX_REDIRECTS + 1):
                status, _, body, location = await self._request(url, {}, ROBOTS_MAX_BYTES, check_type=False)
                if location is None:
                    return RobotsRules.from_response(status, body)
                url = check_url(location, self._allow, base=url)
        except (FetchTimeoutError, FetchNetworkError, TooLargeError, UnsupportedContentError, BlockedURLError):
            pass  # no usable robots.txt: the page's own fetch reports a network fault
        return RobotsRules.allow_all()

    # ---------- public ----------
    def check(self, url: str) -> str:
        """The URL as it would be requested, or the ``BlockedURLError`` / ``InvalidURLError`` a fetch of it would
        raise, without connecting (a caller can refuse a bad URL before spending a budget on it)."""
        return check_url(url, self._allow)

    async def fetch(self, url: str) -> Page:
        """Fetch one URL (cached); raises a ``FetchError`` whose message is the one-line reason."""
        url = check_url(url, self._allow)
        s = self.settings
        try:
            async with asyncio.timeout(s.fetch_timeout_total_s):
                return await self._fetch(url)
        except TimeoutError as e:
            raise FetchTimeoutError(f"gave up after {s.fetch_timeout_total_s:g}s (total timeout)", url) from e

    async def _fetch(self, url: str) -> Page:
        s = self.settings
        t0 = time.perf_counter()
        key = _cache_key(url)
        self._ensure()
        cached = None
        if self._cache is not None:
            await self._check_resolved(url)  # a cached page is served only where a fetch would be allowed now
            cached = await asyncio.to_thread(self._cache.get, key)
            if cached is not None and self._cache.is_fresh(cached):
                return self._page_from_cache(cached, url, t0)
        current = url
        seen = {current}
        hops = 0
        while True:
            if s.fetch_respect_robots:
                await self._robots_check(current)
            headers: dict[str, str] = {}
            if cached is not None and hops == 0:
                if cached.etag:
                    headers["If-None-Match"] = cached.etag
                if cached.last_modified:
                    headers["If-Modified-Since"] = cached.last_modified
            status, hdrs, body, location = await self._request_with_retries(current, headers, s.fetch_max_bytes,
                                                                            check_type=True)
            if status == 304 and cached is not None:
                now = time.time()
                await asyncio.to_thread(self._cache.touch, key, now)
                cached.fetched_at = now
                return self._page_from_cache(cached, url, t0)
            if location is None:
                break
            hops += 1
            if hops > s.fetch_max_redirects:
                raise TooManyRedirectsError(f"more than {s.fetch_max_redirects} redirects", url)
            try:
                current = check_url(location, self._allow, base=current)
            except BlockedURLError as e:  # InvalidURLError included: it keeps its type
                raise type(e)(f"redirect to {_short(location, 60)} {e.reason}", url) from None
            if current in seen:
                raise TooManyRedirectsError("redirect loop", url)
            seen.add(current)
        if status != 200:
            reason = httpx.codes.get_reason_phrase(status) or "error"
            raise HTTPStatusError(f"HTTP {status} {reason}", current, status=status)
        ctype = _content_type(hdrs.get("content-type", ""), body, current)
        now = time.time()
        page = Page(url=current, requested_url=url, status=status, content_type=ctype, body=body, headers=hdrs,
                    fetched_at=now, from_cache=False, elapsed_s=time.perf_counter() - t0)
        if self._cache is not None:
            await asyncio.to_thread(self._cache.put, key, current, status, ctype, hdrs, body, now)
        return page

    async def _check_resolved(self, url: str) -> None:
        p = urlsplit(url)
        host = p.hostname or ""
        port = p.port or (443 if p.scheme == "https" else 80)
        if self._allow(host, port) or _parse_ip(host) is not None:
            return  # allowed, or an IP literal that check_url already judged
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return  # offline: the cache may answer; a real connection is checked again anyway
        for info in infos:
            ip = _parse_ip(info[4][0])
            if ip is None or ip_is_forbidden(ip):
                raise BlockedURLError(f"blocked: {host} resolves to a non-public address ({info[4][0]})", url)

    def _page_from_cache(self, e, url: str, t0: float) -> Page:
        import json

        return Page(url=e.final_url, requested_url=url, status=e.status, content_type=e.content_type, body=e.body,
                    headers=json.loads(e.headers_json or "{}"), fetched_at=e.fetched_at, from_cache=True,
                    elapsed_s=time.perf_counter() - t0)

    async def fetch_many(self, urls: list[str]) -> list[Page | FetchError]:
        """Fetch several URLs concurrently (within the limits); a failure is returned in place, never raised."""

        async def one(u: str):
            try:
                return await self.fetch(u)
            except FetchError as e:
                return e

        return list(await asyncio.gather(*(one(u) for u in urls)))


def fetch_url(url: str, settings: RetrievalSettings | None = None) -> Page:
    """Synchronous convenience: fetch one URL with a fresh ``Fetcher``."""

    async def go() -> Page:
        async with Fetcher(settings) as f:
            return await f.fetch(url)

    return asyncio.run(go())
