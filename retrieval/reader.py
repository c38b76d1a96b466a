"""The reader: extracts a page's main text (trafilatura for HTML, pypdf for PDF, text and markdown as they are)
and ranks its passages for a query (BM25 and MiniLM similarity, fused). Every passage keeps exact character
offsets: ``document.text[p.start:p.end] == p.text``."""

from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path

import numpy as np

from .decoding import decode_body
from .errors import ExtractionError, UnsupportedContentError
from .extractor import ExtractionTimeout, extract as run_extractor
from .pagetext import collapse_spaces, is_placeholder, strip_tags, tidy
from .settings import RetrievalSettings
from .sniff import effective_type, sniff
from .text import SmallBM25, chunk_spans, tokenize
from .types import Document, Page, Passage

_TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown"}
_HTML_TYPES = {"text/html", "application/xhtml+xml"}


_clean = tidy  # linear: see pagetext


def _type_of(name_or_type: str) -> str:
    s = (name_or_type or "").strip().lower()
    if "/" in s and "." not in s.split("/")[-1]:
        return s.split(";", 1)[0].strip()
    suffix = Path(s).suffix
    extra = {".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain", ".htm": "text/html",
             ".html": "text/html", ".xhtml": "application/xhtml+xml", ".pdf": "application/pdf",
             ".json": "application/json"}
    if suffix in extra:
        return extra[suffix]
    guessed, _ = mimetypes.guess_type(s)
    return guessed or "application/octet-stream"


def _z(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x)


def _is_heading(text: str) -> bool:
    """A short block without sentence punctuation: a title, a tagline, a menu line."""
    return len(text.split()) < 12 and not re.search(r"[.!?][\"'”’)\]]*$", text.strip())


_TITLE_OPEN = re.compile(r"<title\b[^<>]{0,200}>", re.I)
_TITLE_CLOSE = re.compile(r"</title", re.I)


def _html_title(html: str) -> str:
    """The <title> text: one forward search for each tag (linear whatever the markup)."""
    import html as htmlmod

    m = _TITLE_OPEN.search(html)
    end = _TITLE_CLOSE.search(html, m.end()) if m else None
    if m is None or end is None:
        return ""
    return htmlmod.unescape(" ".join(html[m.end():min(end.start(), m.end() + 2000)].split())).strip()


class Reader:
    def __init__(self, settings: RetrievalSettings | None = None):
        self.settings = settings or RetrievalSettings()
        self._embedder = None

    @property
    def embedder(self):
        if self._embedder is None:
            from .embed import Embedder

            self._embedder = Embedder.for_settings(self.settings)
        return self._embedder

    # ---------- extraction ----------
    def extract(self, page: Page, timeout_s: float | None = None) -> Document:
        """The main text of ``page`` (HTML, text, Markdown, PDF, JSON; a body whose type says nothing is sniffed),
        within ``timeout_s`` seconds (default and cap: ``reader_extract_timeout_s``; a caller passes what is left
        of its deadline). Raises ``ExtractionError`` when the page has no text of its own (empty, a bare title, a
        notice to enable JavaScript), ``UnsupportedContentError`` for a type it cannot read."""
        limit = self.settings.reader_extract_timeout_s
        limit = min(limit, max(0.05, timeout_s)) if timeout_s is not None else limit
        ctype = effective_type(page.content_type, page.body)
        if ctype in _HTML_TYPES:
            doc = self._html(page.body, page.content_type, page.url, limit)
        elif ctype in _TEXT_TYPES:
            doc = self._text(page.body, page.content_type, page.url, markdown=ctype != "text/plain")
        elif ctype == "application/pdf":
            doc = self._pdf(page.body, page.url, limit)
        elif ctype == "application/json":
            doc = self._json(page.body, page.content_type, page.url)
        else:
            raise UnsupportedContentError(f"cannot read content type {ctype or 'unknown'}")
        if is_placeholder(doc.text, "" if doc.title == page.url else doc.title):
            raise ExtractionError(f"no readable text in {page.url} (only a title or a notice to enable JavaScript)"
                                  if doc.text.strip() else f"no readable text in {page.url}")
        return doc

    def document_from_bytes(self, data: bytes, filename_or_content_type: str, url: str | None = None) -> Document:
        """A document from an uploaded file: by its file name (``notes.md``) or its content type."""
        ctype = _type_of(filename_or_content_type)
        if ctype == "application/octet-stream":
            ctype = sniff(data)
        name = filename_or_content_type if "/" not in filename_or_content_type else "upload"
        page = Page(url=url or f"upload:{name}", requested_url=url or f"upload:{name}", status=200,
                    content_type=ctype, body=data, headers={})
        doc = self.extract(page)
        if doc.title in ("", page.url) and "/" not in filename_or_content_type:
            doc.title = Path(filename_or_content_type).stem.replace("_", " ")
        return doc

    def _html(self, body: bytes, content_type: str, url: str, limit: float) -> Document:
        html = decode_body(body, content_type)
        try:
            fields = run_extractor("html", html, url, limit)
        except (ExtractionTimeout, ValueError):  # too slow, or the worker failed: the linear stripper reads it
            fields = {"text": "", "title": "", "date": None, "author": None}
        text = fields["text"]
        if not text.strip():
            text = collapse_spaces(strip_tags(html))
        title = fields["title"] or _html_title(html)
        return Document(url=url, title=title or url, text=tidy(text), published=fields["date"],
                        author=fields["author"])

    @staticmethod
    def _strip_tags(html: str) -> str:
        return strip_tags(html)

    def _text(self, body: bytes, content_type: str, url: str, markdown: bool) -> Document:
        text = _clean(decode_body(body, content_type, html=False))
        title = ""
        for line in text.splitlines():
            s = line.strip()
            if not s:
                continue
            if s.lower().startswith("title:"):
                title = s[6:].strip().replace("_", " ")
            elif markdown and s.startswith("#"):
                title = s.lstrip("#").strip()
            break
        return Document(url=url, title=title or url.rsplit("/", 1)[-1] or url, text=text)

    def _pdf(self, body: bytes, url: str, limit: float) -> Document:
        try:
            fields = run_extractor("pdf", body, url, limit)
        except ExtractionTimeout:
            raise ExtractionError(f"reading the PDF took longer than {limit:g} s; raise "
                                  "MOESEARCH_READER_EXTRACT_TIMEOUT_S to read it") from None
        except ValueError as e:
            raise ExtractionError(str(e)) from None
        return Document(url=url, title=fields["title"] or url.rsplit("/", 1)[-1] or url, text=tidy(fields["text"]))

    def _json(self, body: bytes, content_type: str, url: str) -> Document:
        raw = decode_body(body, content_type, html=False)
        try:
            text = json.dumps(json.loads(raw), indent=1, ensure_ascii=False)
        except (json.JSONDecodeError, RecursionError):  # deeply nested JSON is read as the text it is
            text = raw
        return Document(url=url, title=url, text=text)

    # ---------- ranking ----------
    def passages(self, document: Document) -> list[tuple[int, int]]:
        s = self.settings
        spans = [(sp.start, sp.end) for sp in chunk_spans(document.text, s.passage_target_words, s.passage_max_words,
                                                          s.passage_overlap_sentences, blocks=True)]
        # headings and taglines ("Shirley Temple / From LocalWiki") say nothing a citation could rest on
        prose = [(a, b) for a, b in spans if not _is_heading(document.text[a:b])]
        return prose or spans

    def rank(self, document: Document, query: str, k: int = 5) -> list[Passage]:
        """The ``k`` passages of ``document`` that best answer ``query`` (BM25 + embeddings, fused), best first;
        overlapping passages are not returned twice."""
        spans = self.passages(document)
        if not spans or k <= 0:
            return []
        texts = [document.text[a:b] for a, b in spans]
        bm = np.asarray(SmallBM25([tokenize(f"{document.title} {t}") for t in texts]).scores(tokenize(query)))
        # Dense similarity for the BM25 candidates (all passages of a normal page; the best ones of a huge page),
        # then a linear fusion of z-normalised scores: unlike rank fusion it keeps how far ahead a passage is.
        cap = self.settings.reader_max_embed_passages
        cand = np.argsort(-bm, kind="stable")[:cap] if len(texts) > cap else np.arange(len(texts))
        vecs = self.embedder.encode([query] + [texts[i] for i in cand])
        dense = vecs[1:] @ vecs[0]
        fused_arr = _z(dense) + self.settings.fusion_bm25_weight * _z(bm[cand])
        fused = {int(i): float(f) for i, f in zip(cand, fused_arr)}
        order = sorted(fused, key=lambda i: -fused[i])
        out: list[Passage] = []
        taken: list[tuple[int, int]] = []
        for i in order:
            a, b = spans[i]
            if any(min(b, tb) - max(a, ta) > 0.5 * min(b - a, tb - ta) for ta, tb in taken):
                continue
            taken.append((a, b))
            out.append(Passage(text=texts[i], url=document.url, title=document.title, start=a, end=b,
                               score=float(fused[i]), published=document.published))
            if len(out) == k:
                break
        return out

    def read(self, page: Page, query: str, k: int = 5) -> list[Passage]:
        return self.rank(self.extract(page), query, k)
