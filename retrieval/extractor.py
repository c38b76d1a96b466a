"""The extractors (trafilatura for HTML, pypdf for PDF) under a time limit that can really stop them.

Both are linear but slow on some shapes (trafilatura ~1.5-3 s per MB of tiny paragraphs, pypdf more on PDFs made of
many small text operators), and a Python thread cannot be stopped. So a large input is handed to one long-lived
worker process (``python -m retrieval.extractor``, started on first need) that is killed when the limit passes; a
small input (``INLINE_MAX_BYTES``, well under a second of work) is extracted in-process. The caller falls back to
the linear tag stripper (HTML) or to the pages read so far (PDF) when the limit passes.

Protocol on the worker's stdin/stdout: 8-byte big-endian length, then a pickle; request ``(kind, payload, url,
seconds)``, answer ``("ok", dict)`` or ``("error", message)``. Only our own parent talks to it."""

from __future__ import annotations

import atexit
import io
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from typing import Any

INLINE_MAX_BYTES = 200_000
_HEADER = struct.Struct(">Q")


class ExtractionTimeout(Exception):
    """The extractor did not finish within its limit (the worker was killed)."""


def html_fields(html: str, url: str | None) -> dict[str, Any]:
    """trafilatura's main text and metadata: {text, title, date, author} (empty text when it finds none)."""
    import trafilatura

    try:
        res = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                          include_tables=True, favor_precision=False)
    except (Exception, RecursionError):  # noqa: BLE001 - malformed HTML: the caller strips the tags instead
        res = None
    if res is None:
        return {"text": "", "title": "", "date": None, "author": None}
    get = res.get if isinstance(res, dict) else (lambda k, d=None: getattr(res, k, d))
    return {"text": get("text") or "", "title": get("title") or "", "date": get("date") or None,
            "author": get("author") or None}


def pdf_fields(body: bytes, seconds: float | None = None) -> dict[str, Any]:
    """{text (pages joined by blank lines), title, pages_read, pages}; stops between pages after ``seconds``.
    Raises ValueError('unreadable PDF (<type>)') for a broken file."""
    from pypdf import PdfReader

    stop = time.monotonic() + seconds if seconds else None
    parts: list[str] = []
    try:
        pdf = PdfReader(io.BytesIO(body))
        pages = pdf.pages
        for page in pages:
            if stop is not None and time.monotonic() > stop:
                break
            parts.append(page.extract_text() or "")
        meta = pdf.metadata or {}
        title = str(meta.get("/Title") or "").strip()
    except (Exception, RecursionError) as e:  # noqa: BLE001 - pypdf raises many kinds on broken files
        raise ValueError(f"unreadable PDF ({type(e).__name__})") from e
    return {"text": "\n\n".join(parts), "title": title, "pages_read": len(parts), "pages": len(pages)}


def _work(kind: str, payload: Any, url: str | None, seconds: float | None) -> dict[str, Any]:
    if kind == "html":
        return html_fields(payload, url)
    if kind == "pdf":
        return pdf_fields(payload, seconds)
    raise ValueError(f"unknown extraction kind {kind!r}")


# ---------- the worker process ----------
def _read_exact(fd: int, n: int, stop: float | None) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        if stop is not None:
            left = stop - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ExtractionTimeout()
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("extractor worker exited")
        buf += chunk
    return bytes(buf)


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.proc = subprocess.Popen([sys.executable, "-m", "retrieval.extractor"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def call(self, request: tuple, seconds: float) -> dict[str, Any]:
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(_HEADER.pack(len(data)) + data)
        self.proc.stdin.flush()
        stop = time.monotonic() + seconds
        fd = self.proc.stdout.fileno()
        (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, stop))
        status, value = pickle.loads(_read_exact(fd, size, stop))
        if status != "ok":
            raise ValueError(value)
        return value

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


_LOCK = threading.Lock()
_WORKER: _Worker | None = None


def _shutdown() -> None:
    if _WORKER is not None:
        _WORKER.kill()


atexit.register(_shutdown)


def extract(kind: str, payload: str | bytes, url: str | None, seconds: float) -> dict[str, Any]:
    """Run extractor ``kind`` ('html' or 'pdf') on ``payload`` within ``seconds`` of wall time. Raises
    ``ExtractionTimeout`` when the limit passes, ValueError for a broken input."""
    if len(payload) <= INLINE_MAX_BYTES or sys.platform == "win32":
        return _work(kind, payload, url, seconds)
    global _WORKER
    with _LOCK:  # one large extraction at a time: they are CPU-bound anyway
        if _WORKER is None or _WORKER.proc.poll() is not None:
            _WORKER = _Worker()
        try:
            # the PDF reader stops between pages at 80% of the limit and returns what it has; the rest is headroom
            return _WORKER.call((kind, payload, url, seconds * 0.8), seconds)
        except (ExtractionTimeout, EOFError, OSError, pickle.UnpicklingError) as e:
            _WORKER.kill()
            _WORKER = None
            if isinstance(e, ExtractionTimeout):
                raise
            raise ValueError(f"extractor worker failed ({type(e).__name__})") from None


def _serve() -> None:  # pragma: no cover - runs in the worker process
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = stdin.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return
        kind, payload, url, seconds = pickle.loads(stdin.read(_HEADER.unpack(head)[0]))
        try:
            answer: tuple = ("ok", _work(kind, payload, url, seconds))
        except Exception as e:  # noqa: BLE001 - reported to the parent, which raises it there
            answer = ("error", str(e) or type(e).__name__)
        data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.write(_HEADER.pack(len(data)) + data)
        stdout.flush()


if __name__ == "__main__":
    _serve()
