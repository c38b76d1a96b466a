"""Fixtures for retrieval tests: small real corpora, the local web, and a test HTTP server for fetcher faults."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from retrieval import Document, RetrievalSettings

# Titles around the README's sample question plus a spread of others from the shipped corpus.
SAMPLE_TITLES = {"Kiss and Tell (1945 film)", "Shirley Temple", "Meet Corliss Archer", "Janet Waldo",
                 "Corliss Archer", "A Kiss for Corliss"}


def _read_corpus(shared_data: Path) -> list[dict]:
    with (shared_data / "hotpotqa" / "corpus.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="session")
def corpus_rows(shared_data) -> list[dict]:
    return _read_corpus(shared_data)


@pytest.fixture(scope="session")
def small_rows(corpus_rows) -> list[dict]:
    """About 50 real paragraphs including the sample question's."""
    picked = [r for r in corpus_rows if r["title"] in SAMPLE_TITLES]
    picked += [r for r in corpus_rows[::110] if r["title"] not in SAMPLE_TITLES]
    return picked


@pytest.fixture(scope="session")
def small_jsonl(small_rows, tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("corpus") / "small.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in small_rows), encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def small_docs(small_rows) -> list[Document]:
    docs = [Document(url=f"https://en.wikipedia.org/wiki/{r['title'].replace(' ', '_')}", title=r["title"],
                     text=r["text"]) for r in small_rows]
    # two dated documents for time-range tests
    docs.append(Document(url="https://news.example/fresh", title="Fresh harbour report",
                         text="The harbour of Zanzibar reopened this week after the storm. Ferries run again.",
                         published=time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))))
    docs.append(Document(url="https://news.example/old", title="Old harbour report",
                         text="The harbour of Zanzibar was closed by a storm. Ferries stopped for a week.",
                         published="2001-05-04"))
    return docs


@pytest.fixture
def settings(tmp_data_dir) -> RetrievalSettings:
    return RetrievalSettings()


@pytest.fixture(scope="module")
def localweb(small_docs):
    from retrieval import LocalWeb

    with LocalWeb(small_docs) as web:
        yield web


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) serving one handler class; ``stop()`` shuts it down."""

    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class FaultServer(LocalServer):
    """A real HTTP server on 127.0.0.1 with pages that misbehave: too big, gzip bombs, slow, redirects, 5xx."""

    def __init__(self):
        self.inflight = 0
        self.max_inflight = 0
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        # 100 MB of zeros in about 100 KB, made before serving: made inside a request, it raced the 1 s read timeout
        self.bomb = gzip.compress(b"\0" * 100_000_000, compresslevel=9)
        srv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, status, body=b"", ctype="text/html; charset=utf-8", headers=None):
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):  # noqa: N802
                u = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(u.query).items()}
                with srv.lock:
                    srv.hits[u.path] = srv.hits.get(u.path, 0) + 1
                    n = srv.hits[u.path]
                p = u.path
                page = b"<html><head><title>T</title></head><body><article><h1>T</h1><p>" + \
                       b"Plain words in a paragraph that is long enough to count as main text. " * 5 + \
                       b"</p></article></body></html>"
                if p == "/robots.txt":
                    return self.send(200, b"User-agent: *\nDisallow: /private\n", "text/plain")
                if p in ("/ok", "/private"):
                    return self.send(200, page)
                if p == "/big":
                    return self.send(200, b"<p>" + b"x" * 3_000_000 + b"</p>")
                if p == "/big-chunked":  # no Content-Length: the limit must hold while streaming
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        for _ in range(200):
                            self.wfile.write(b"y" * 65536)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return None
                if p == "/gzip-bomb":
                    return self.send(200, srv.bomb, headers={"Content-Encoding": "gzip"})
                if p == "/gzip-ok":
                    return self.send(200, gzip.compress(page), headers={"Content-Encoding": "gzip"})
                if p == "/slow":
                    time.sleep(float(q.get("s", "3")))
                    return self.send(200, page)
                if p == "/drip":  # a byte every 0.2 s: never a read timeout, only the total timeout
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    try:
                        for _ in range(40):
                            self.wfile.write(b"a")
                            self.wfile.flush()
                            time.sleep(0.2)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return None
                if p == "/concurrent":
                    with srv.lock:
                        srv.inflight += 1
                        srv.max_inflight = max(srv.max_inflight, srv.inflight)
                    time.sleep(0.3)
                    with srv.lock:
                        srv.inflight -= 1
                    return self.send(200, page)
                if p.startswith("/redirect/"):
                    left = int(p.rsplit("/", 1)[1])
                    return self.send(302, headers={"Location": f"/redirect/{left - 1}" if left > 0 else "/ok"})
                if p == "/loop":
                    return self.send(302, headers={"Location": "/loop"})
                if p == "/redirect-to":
                    return self.send(302, headers={"Location": q["url"]})
                if p == "/flaky":  # 503 with Retry-After first, then the page
                    if n == 1:
                        return self.send(503, b"busy", headers={"Retry-After": "0"})
                    return self.send(200, page)
                if p == "/500":
                    return self.send(500, b"oops")
                if p == "/404":
                    return self.send(404, b"missing")
                if p == "/binary":
                    return self.send(200, bytes(range(256)) * 10, "application/octet-stream")
                if p == "/no-type":
                    return self.send(200, bytes(range(256)) * 10, None)
                if p == "/latin1":
                    body = "<html><head><title>Café</title></head><body><article><p>Crème brûlée à la française, " \
                           "un dessert très apprécié. Le café est servi après le dîner.</p></article></body></html>"
                    return self.send(200, body.encode("latin-1"), "text/html; charset=iso-8859-1")
                if p == "/etag":
                    if self.headers.get("If-None-Match") == '"v1"':
                        return self.send(304, b"", None, headers={"ETag": '"v1"'})
                    return self.send(200, page, headers={"ETag": '"v1"'})
                return self.send(404, b"no such test page")

        self.serve(H)



@pytest.fixture(scope="module")
def fault_server():
    s = FaultServer()
    yield s
    s.stop()


class HostileServer(LocalServer):
    """A real HTTP server on 127.0.0.1 whose pages a test sets: ``routes[path] = (status, headers, body)``; a
    missing path is 404, ``robots`` is the robots.txt body (None: 404). Headers are sent exactly as given."""

    def __init__(self):
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.robots: bytes | None = None
        self.robots_status = 200
        self.hits: dict[str, int] = {}
        srv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):  # noqa: N802
                path = urlsplit(self.path).path
                srv.hits[path] = srv.hits.get(path, 0) + 1
                if path == "/robots.txt" and srv.robots is not None:
                    status, headers, body = srv.robots_status, {"Content-Type": "text/plain"}, srv.robots
                else:
                    status, headers, body = srv.routes.get(self.path, srv.routes.get(path, (404, {}, b"missing")))
                self.send_response(status)
                for k, v in headers.items():  # non-Latin-1 text goes out as its UTF-8 bytes, as servers do
                    self.send_header(k, v.encode("utf-8", "surrogatepass").decode("latin-1"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.serve(H)

    def page(self, path: str, body: bytes | str, ctype: str | None = "text/html; charset=utf-8", status: int = 200,
             **headers: str) -> str:
        """Serve ``body`` at ``path``; returns the page's URL."""
        h = {"Content-Type": ctype} if ctype is not None else {}
        h.update({k.replace("_", "-"): v for k, v in headers.items()})
        self.routes[path] = (status, h, body.encode() if isinstance(body, str) else body)
        return self.url + path



@pytest.fixture(scope="module")
def hostile_server():
    s = HostileServer()
    yield s
    s.stop()


@pytest.fixture
def hostile(hostile_server, tmp_data_dir) -> HostileServer:
    """The hostile server, reset for one test (routes and robots.txt), with a fresh data dir."""
    hostile_server.routes.clear()
    hostile_server.robots, hostile_server.robots_status = None, 200
    hostile_server.hits.clear()
    return hostile_server


def hostile_settings(server: HostileServer, **kw) -> RetrievalSettings:
    """Settings that allow the hostile server (as the local web is allowed), no cache, short timeouts."""
    base = dict(fetch_allow_hosts=[f"127.0.0.1:{server.port}"], fetch_cache=False, fetch_timeout_read_s=5.0,
                fetch_timeout_total_s=15.0, fetch_backoff_s=0.05, fetch_retries=0)
    return RetrievalSettings(**(base | kw))


def fetch_one(settings: RetrievalSettings, url: str):
    """Fetch ``url`` with a fresh Fetcher (synchronously)."""
    import asyncio

    from retrieval import Fetcher

    async def go():
        async with Fetcher(settings) as f:
            return await f.fetch(url)

    return asyncio.run(go())
