"""The reader: extracts a page's main text (trafilatura for HTML, pypdf for PDF, text and markdown as they are)
and ranks its passages for a query (BM25 and MiniLM similarity, fused). Every passage keeps exact character
offsets: ``document.text[p.start:p.end] == p.text``."""

from __future__ import annotations

import io
import json
import mimetypes
import re
from pathlib import Path

import numpy as np

from .errors import ExtractionError, UnsupportedContentError
from .settings import RetrievalSettings
from .text import SmallBM25, chunk_spans, tokenize
from .types import Document, Page, Passage

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.I)
_TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown"}
_HTML_TYPES = {"text/html", "application/xhtml+xml"}


def _charset_of(content_type: str) -> str | None:
    m = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type or "", re.I)
    return m.group(1) if m else None


def decode_body(body: bytes, content_type: str = "") -> str:
    """Text of a body: the declared charset, a <meta charset>, UTF-8, or a detected charset, in that order."""
    if b"\x00" in body[:8192] and not body.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsupportedContentError("binary content, not text")
    candidates = [_charset_of(content_type)]
    m = _META_CHARSET.search(body[:4096])
    if m:
        candidates.append(m.group(1).decode("ascii", "ignore"))
    for cs in candidates:
        if cs:
            try:
                return body.decode(cs)
            except (LookupError, UnicodeDecodeError):
                continue
    if body.startswith(b"\xef\xbb\xbf"):
        return body[3:].decode("utf-8", errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(body[:200_000]).best()
        if best is not None and best.encoding:
            return body.decode(best.encoding, errors="replace")
    except ImportError:  # pragma: no cover
        pass
    return body.decode("cp1252", errors="replace")


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[ \t\f\v]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


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
    def extract(self, page: Page) -> Document:
        ctype = (page.content_type or "").split(";", 1)[0].strip().lower()
        if not ctype:
            from .fetcher import sniff_type

            ctype = sniff_type(page.body)
        if ctype in _HTML_TYPES:
            doc = self._html(page.body, page.content_type, page.url)
        elif ctype in _TEXT_TYPES:
            doc = self._text(page.body, page.content_type, page.url, markdown=ctype != "text/plain")
        elif ctype == "application/pdf":
            doc = self._pdf(page.body, page.url)
        elif ctype == "application/json":
            doc = self._json(page.body, page.content_type, page.url)
        else:
            raise UnsupportedContentError(f"cannot read content type {ctype or 'unknown'}")
        if not doc.text.strip():
            raise ExtractionError(f"no readable text in {page.url}")
        return doc

    def document_from_bytes(self, data: bytes, filename_or_content_type: str, url: str | None = None) -> Document:
        """A document from an uploaded file: by its file name (``notes.md``) or its content type."""
        ctype = _type_of(filename_or_content_type)
        if ctype == "application/octet-stream":
            from .fetcher import sniff_type

            ctype = sniff_type(data)
        name = filename_or_content_type if "/" not in filename_or_content_type else "upload"
        page = Page(url=url or f"upload:{name}", requested_url=url or f"upload:{name}", status=200,
                    content_type=ctype, body=data, headers={})
        doc = self.extract(page)
        if doc.title in ("", page.url) and "/" not in filename_or_content_type:
            doc.title = Path(filename_or_content_type).stem.replace("_", " ")
        return doc

    def _html(self, body: bytes, content_type: str, url: str) -> Document:
        import trafilatura

        html = decode_body(body, content_type)
        text, title, date, author = "", "", None, None
        try:
            res = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                              include_tables=True, favor_precision=False)
        except Exception:  # noqa: BLE001 - malformed HTML: fall back to the tag-stripped text
            res = None
        if res is not None:
            get = res.get if isinstance(res, dict) else (lambda k, d=None: getattr(res, k, d))
            text = get("text") or ""
            title = get("title") or ""
            date = get("date") or None
            author = get("author") or None
        if not text.strip():
            text = self._strip_tags(html)
        if not title:
            m = re.search(r"<title[^>]*>(.*?)</title>", html, re.I | re.S)
            if m:
                import html as htmlmod

                title = htmlmod.unescape(re.sub(r"\s+", " ", m.group(1))).strip()
        return Document(url=url, title=title or url, text=_clean(text), published=date, author=author)

    @staticmethod
    def _strip_tags(html: str) -> str:
        import html as htmlmod

        html = re.sub(r"(?is)<(script|style|noscript|template)[^>]*>.*?</\1>", " ", html)
        html = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</h\d>|</li>", "\n", html)
        return htmlmod.unescape(re.sub(r"<[^>]+>", " ", html))

    def _text(self, body: bytes, content_type: str, url: str, markdown: bool) -> Document:
        text = _clean(decode_body(body, content_type))
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

    def _pdf(self, body: bytes, url: str) -> Document:
        try:
            from pypdf import PdfReader

            pdf = PdfReader(io.BytesIO(body))
            parts = [(p.extract_text() or "") for p in pdf.pages]
            meta = pdf.metadata or {}
            title = str(meta.get("/Title") or "").strip()
        except Exception as e:  # noqa: BLE001 - pypdf raises many kinds on broken files
            raise ExtractionError(f"unreadable PDF ({type(e).__name__})") from e
        text = _clean("\n\n".join(parts))
        return Document(url=url, title=title or url.rsplit("/", 1)[-1] or url, text=text)

    def _json(self, body: bytes, content_type: str, url: str) -> Document:
        raw = decode_body(body, content_type)
        try:
            text = json.dumps(json.loads(raw), indent=1, ensure_ascii=False)
        except json.JSONDecodeError:
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
