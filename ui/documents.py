"""Reading a page the user points at (a URL) or a file they upload, into `retrieval.Document`s the agent answers
from. The original bytes are stored (ui_document) and read again when a question needs them."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from moesearch_core.errors import UserError
from ui.errors import ReadError
from ui.render import safe_url

SUFFIXES = {".html", ".htm", ".txt", ".md", ".markdown", ".pdf"}


def check_upload(name: str, data: bytes, max_mb: int) -> None:
    if PurePath(name).suffix.lower() not in SUFFIXES:
        raise ReadError(f"{name} is not HTML, text, Markdown or PDF; upload one of: {', '.join(sorted(SUFFIXES))}")
    if len(data) > max_mb * 1_000_000:
        raise ReadError(f"{name} is larger than {max_mb} MB; raise MOESEARCH_UI_MAX_UPLOAD_MB or upload a smaller file")
    if not data:
        raise ReadError(f"{name} is empty; upload a file with some text in it")


def to_document(data: bytes, name_or_type: str, url: str | None = None):
    """A Document from bytes (HTML, text, Markdown, PDF), as retrieval's reader extracts it."""
    try:
        from retrieval import Reader
    except ImportError:  # the package root does not export it (yet)
        from retrieval.reader import Reader

    try:
        doc = Reader().document_from_bytes(data, name_or_type, url=url or f"file:{name_or_type}")
    except Exception as e:  # noqa: BLE001
        what = url or name_or_type
        if isinstance(e, UserError):
            raise ReadError(f"could not read {what}: {e.message}; try another page or file") from e
        raise ReadError(f"could not read {what} ({type(e).__name__}: {str(e)[:120]}); try another page or file") from e
    if not (getattr(doc, "text", "") or "").strip():
        raise ReadError(f"no text found in {url or name_or_type}; try another page or file")
    return doc


async def fetch_url(url: str, retrieval_overrides: dict[str, Any] | None = None) -> tuple[bytes, str, str]:
    """(body, content type, final url) of a page, through retrieval's fetcher (SSRF guard, limits, cache)."""
    if safe_url(url) is None:
        raise ReadError(f"{url!r} is not an http(s) URL; paste one like https://example.org/page")
    try:
        from retrieval import Fetcher
    except ImportError:
        from retrieval.fetcher import Fetcher
    from retrieval.settings import RetrievalSettings

    settings = RetrievalSettings.model_validate(RetrievalSettings().model_dump() | (retrieval_overrides or {}))
    try:
        async with Fetcher(settings) as fetcher:
            page = await fetcher.fetch(url)
    except Exception as e:  # noqa: BLE001
        if isinstance(e, UserError):
            raise ReadError(e.message) from e
        raise ReadError(f"could not fetch {url} ({type(e).__name__}); check the URL and your network") from e
    return page.body, page.content_type or "text/html", page.url or url
