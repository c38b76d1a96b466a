"""A local web for offline use: every corpus document as a real HTML page (navigation, sidebars, footer around
the article, so extraction matters) and a SearXNG-compatible JSON search endpoint, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import html
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .corpus import CorpusDoc, load_corpus
from .settings import RetrievalSettings
from .types import Document

SITE = "LocalWiki"


def page_path(title: str) -> str:
    return "/wiki/" + quote(title.replace(" ", "_"), safe="()',-.!*_")


def _snippet(text: str, limit: int = 400) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit] + " …"


def render_page(doc: CorpusDoc, others: list[CorpusDoc]) -> str:
    """A full HTML page around the article: header, navigation, two sidebars, cookie banner and footer."""
    e = html.escape
    paras = "\n".join(f"<p>{e(p.strip())}</p>" for p in doc.text.split("\n\n") if p.strip())
    links = "\n".join(f'<li><a href="{page_path(o.title)}">{e(o.title)}</a></li>' for o in others)
    published = (f'<meta property="article:published_time" content="{e(doc.published)}">\n'
                 f'<meta name="date" content="{e(doc.published)}">') if doc.published else ""
    shown_date = f'<p class="dateline">Published <time datetime="{e(doc.published)}">{e(doc.published)}</time></p>' \
        if doc.published else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{e(doc.title)} - {SITE}</title>
<meta property="og:title" content="{e(doc.title)}">
<meta property="og:site_name" content="{SITE}">
<link rel="canonical" href="{e(doc.url)}">
{published}
<style>body{{font-family:sans-serif}} nav,aside{{font-size:small}}</style>
</head>
<body>
<div id="cookie-banner" class="banner">We use cookies to remember your reading preferences. By continuing to browse
 this site you agree to our cookie policy. <button>Accept all cookies</button> <button>Manage settings</button></div>
<header class="site-header">
 <a class="logo" href="/">{SITE}, the free local encyclopedia</a>
 <form action="/search" method="get"><input name="q" placeholder="Search {SITE}"><button>Search</button></form>
 <nav class="top-nav"><ul><li><a href="/">Main page</a></li><li><a href="/random">Random article</a></li>
 <li><a href="/about">About {SITE}</a></li><li><a href="/contact">Contact us</a></li><li><a href="/donate">Donate</a></li>
 <li><a href="/login">Log in</a></li></ul></nav>
</header>
<div class="layout">
<aside class="sidebar-left"><h3>Navigation</h3><ul><li><a href="/">Main page</a></li>
<li><a href="/recent">Recent changes</a></li><li><a href="/help">Help and support</a></li>
<li><a href="/community">Community portal</a></li></ul>
<h3>Tools</h3><ul><li><a href="/what-links-here">What links here</a></li><li><a href="/upload">Upload file</a></li>
<li><a href="/special">Special pages</a></li><li><a href="/print">Printable version</a></li></ul></aside>
<main id="content">
<article>
<h1 class="article-title">{e(doc.title)}</h1>
<p class="tagline">From {SITE}, the free local encyclopedia</p>
{shown_date}
<div class="article-body">
{paras}
</div>
</article>
</main>
<aside class="sidebar-right"><h3>Related articles</h3><ul>
{links}
</ul>
<h3>In other languages</h3><ul><li><a href="#">Deutsch</a></li><li><a href="#">Español</a></li><li><a href="#">Français</a></li></ul></aside>
</div>
<footer class="site-footer"><p>This page was last edited recently. Text is available under the Creative Commons
Attribution-ShareAlike License 4.0; additional terms may apply.</p><ul><li><a href="/privacy">Privacy policy</a></li>
<li><a href="/about">About {SITE}</a></li><li><a href="/disclaimers">Disclaimers</a></li>
<li><a href="/code-of-conduct">Code of Conduct</a></li><li><a href="/mobile">Mobile view</a></li></ul></footer>
</body>
</html>
"""


class LocalWeb:
    """``with LocalWeb(corpus) as web: web.url, web.search_url``. Serves ``/wiki/<title>`` pages and
    ``/search?q=...&format=json`` (SearXNG's JSON format). ``json_enabled = False`` makes it answer 403 like a
    SearXNG without JSON output; ``unresponsive_engines`` is reported as is; ``requests`` records every search's
    parameters."""

    def __init__(self, corpus: Path | list[Document] | None = None, host: str = "127.0.0.1", port: int = 0, *,
                 index=None, settings: RetrievalSettings | None = None):
        self.host, self.port = host, port
        self.settings = settings or RetrievalSettings()
        if isinstance(corpus, list):
            self.docs = [CorpusDoc(str(i), d.title, d.text, d.url, d.published) for i, d in enumerate(corpus)]
        else:
            self.docs = load_corpus(corpus)
        self._by_path = {page_path(d.title): d for d in self.docs}
        self._index = index
        self._index_lock = threading.Lock()
        self.json_enabled = True
        self.unresponsive_engines: list[list[str]] = []
        self.requests: list[dict[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------- search ----------
    @property
    def index(self):
        if self._index is None:
            with self._index_lock:
                if self._index is None:
                    from .index import CorpusIndex

                    self._index = CorpusIndex.build(self.docs, Path("/nonexistent"), self.settings, dense=False,
                                                    save=False)
        return self._index

    def doc_url(self, doc: CorpusDoc | Document) -> str:
        return self.url + page_path(doc.title)

    def search(self, q: str, k: int = 10, time_range: str | None = None) -> list[dict]:
        from .providers import within

        out = []
        for ref, doc in self.index.search_docs(q, k * 3 if time_range else k, "fused"):
            if not within(doc.published, time_range):
                continue
            res = {"url": self.doc_url(doc), "title": doc.title, "content": _snippet(doc.text[ref.start:ref.end]),
                   "engine": "localweb", "engines": ["localweb"], "score": round(ref.score, 4),
                   "category": "general", "positions": [len(out) + 1]}
            if doc.published:
                res["publishedDate"] = doc.published
            out.append(res)
            if len(out) == k:
                break
        return out

    # ---------- server ----------
    def _handler(self):
        web = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "moesearch-localweb/0.1"
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:  # noqa: N802
                self.do_GET()

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                path = parts.path
                if path == "/robots.txt":
                    return self._send(200, b"User-agent: *\nAllow: /\n", "text/plain; charset=utf-8")
                if path == "/search":
                    return self._search(parse_qs(parts.query))
                if path.startswith("/wiki/"):
                    doc = web._by_path.get(page_path(unquote(path[len("/wiki/"):]).replace("_", " ")))
                    if doc is None:
                        return self._send(404, b"<html><body><h1>Not found</h1></body></html>",
                                          "text/html; charset=utf-8")
                    body = render_page(doc, web._related(doc)).encode("utf-8")
                    return self._send(200, body, "text/html; charset=utf-8")
                if path in ("/", "/index.html"):
                    links = "".join(f'<li><a href="{page_path(d.title)}">{html.escape(d.title)}</a></li>'
                                    for d in web.docs[:200])
                    body = f"<!DOCTYPE html><html><head><title>{SITE}</title></head><body><h1>{SITE}</h1>" \
                           f"<ul>{links}</ul></body></html>"
                    return self._send(200, body.encode(), "text/html; charset=utf-8")
                return self._send(404, b"<html><body><h1>Not found</h1></body></html>", "text/html; charset=utf-8")

            def _search(self, qs: dict[str, list[str]]) -> None:
                params = {k: v[0] for k, v in qs.items() if v}
                web.requests.append(params)
                q = params.get("q", "").strip()
                fmt = params.get("format", "html")
                time_range = params.get("time_range") or None
                if time_range not in (None, "day", "week", "month", "year"):
                    time_range = None
                if fmt == "json" and not web.json_enabled:
                    return self._send(403, b"Forbidden", "text/html; charset=utf-8")
                results = web.search(q, 10, time_range) if q else []
                if fmt == "json":
                    data = {"query": q, "number_of_results": len(results), "results": results, "answers": [],
                            "corrections": [], "infoboxes": [], "suggestions": [],
                            "unresponsive_engines": web.unresponsive_engines}
                    return self._send(200, json.dumps(data).encode(), "application/json")
                items = "".join(f'<li><a href="{html.escape(r["url"])}">{html.escape(r["title"])}</a>'
                                f'<p>{html.escape(r["content"])}</p></li>' for r in results)
                body = f"<!DOCTYPE html><html><body><ol>{items}</ol></body></html>"
                return self._send(200, body.encode(), "text/html; charset=utf-8")

        return Handler

    def _related(self, doc: CorpusDoc) -> list[CorpusDoc]:
        i = int(doc.id) if doc.id.isdigit() else hash(doc.id)
        n = len(self.docs)
        return [self.docs[(i * 7 + j * 13 + 1) % n] for j in range(5)] if n > 1 else []

    def start(self) -> "LocalWeb":
        _ = self.index  # build the search index before serving
        self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"localweb-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (``moesearch web serve``)."""
        _ = self.index
        server = ThreadingHTTPServer((self.host, self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        try:
            server.serve_forever(poll_interval=0.5)
        finally:
            server.server_close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "LocalWeb":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def search_url(self) -> str:
        return self.url

    def wait_ready(self, timeout: float = 5.0) -> None:  # pragma: no cover - for scripts
        t0 = time.time()
        while self._server is None and time.time() - t0 < timeout:
            time.sleep(0.05)
