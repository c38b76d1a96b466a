"""Data that crosses package boundaries: hits, pages, documents, passages."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Document:
    """The extracted main text of a page or file."""

    url: str
    title: str
    text: str
    published: str | None = None
    author: str | None = None


@dataclass
class Hit:
    """One search result. ``document`` is set when the provider already holds the whole document (local index)."""

    url: str
    title: str
    snippet: str
    score: float = 0.0
    published: str | None = None
    engine: str | None = None
    document: Document | None = None


@dataclass
class Page:
    """A fetched HTTP response. ``url`` is the final URL after redirects."""

    url: str
    requested_url: str
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    fetched_at: float = 0.0
    from_cache: bool = False
    elapsed_s: float = 0.0


@dataclass
class Passage:
    """A ranked piece of a document: ``document.text[start:end] == text``."""

    text: str
    url: str
    title: str
    start: int
    end: int
    score: float
    published: str | None = None


@dataclass
class SearchResult:
    hits: list[Hit]
    warnings: list[str] = field(default_factory=list)
