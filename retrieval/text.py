"""Text utilities: sentence splitting with exact offsets, passage chunking, tokens for BM25, a small BM25."""

from __future__ import annotations

import gc
import math
import re
from collections import Counter
from contextlib import contextmanager
from typing import NamedTuple
from functools import lru_cache

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) and whitespace, before an upper-case
# letter, a digit, a quote or a bracket. Newlines that separate paragraphs are hard boundaries.
_SENT_END = re.compile(r"""(?<=[.!?])(["'”’)\]]*)\s+(?=["'“‘(\[]?[A-Z0-9À-Ý])""")
_PARA = re.compile(r"\n\s*\n|\n(?=\s*[-*•#]|\s*\d+[.)]\s)")
_ABBREV = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "etc", "e.g", "i.e", "no", "vol", "fig",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "gen", "col", "lt", "sgt",
    "capt", "rev", "gov", "sen", "rep", "inc", "ltd", "co", "corp", "u.s", "u.k", "approx", "ca", "c", "al", "op",
}
# a run of letters, digits and dots that starts the word (nothing alphanumeric or '.' before it) and is one letter
# or an abbreviation, right before a '.'
_ABBREV_DOT = re.compile(r"(?<![^\W_])(?<!\.)(?:" + "|".join(
    re.escape(a) for a in sorted(_ABBREV, key=len, reverse=True)) + r"|[^\W\d_])(?=\.)", re.IGNORECASE)
_WORD = re.compile(r"\w+", re.UNICODE)


class Span(NamedTuple):
    """A piece of a text, ``text[start:end]``; a named tuple because a long page makes hundreds of thousands."""

    start: int
    end: int


def _trim(text: str, start: int, end: int) -> Span | None:
    piece = text[start:end]  # str.strip runs in C: one sentence costs a slice, not a Python loop per character
    stripped = piece.lstrip()
    if not stripped:
        return None
    start += len(piece) - len(stripped)
    return Span(start, start + len(stripped.rstrip()))


def _abbreviation_dots(text: str) -> set[int]:
    """Positions of the '.' that end an abbreviation or an initial (``J.``, ``Dr.``, ``e.g.``), not a sentence: the
    whole run of letters, digits and dots before the '.' is one letter or a known abbreviation. Found in one regex
    pass, so splitting costs no Python work per candidate sentence end."""
    return {m.end() for m in _ABBREV_DOT.finditer(text) if len(m.group()) > 1 or m.group().isalpha()}  # not '½.'


@contextmanager
def _gc_paused():
    """Splitting a long page makes hundreds of thousands of small tuples, none of which can form a reference cycle;
    on a big heap the cyclic collector, woken by their number, costs more than the splitting itself."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def split_sentences(text: str) -> list[Span]:
    """Sentence spans (start, end) into ``text``; ``text[s.start:s.end]`` is the sentence, stripped.

    Built from comprehensions over regex matches, not a loop per sentence: a hostile page of a million tiny
    "sentences" must still cost well under a second per MB."""
    with _gc_paused():
        return _sentence_spans(text)


def _sentence_spans(text: str) -> list[Span]:
    abbreviations = _abbreviation_dots(text)
    # the gaps between sentences, (end of one, start of the next): after . ! ? (unless the '.' ends an
    # abbreviation), and at every paragraph break
    gaps = [(m.end(1), m.end()) for m in _SENT_END.finditer(text) if m.start() - 1 not in abbreviations]
    gaps += [(m.start(), m.start()) for m in _PARA.finditer(text)]
    gaps.sort()
    starts = [0] + [b for _, b in gaps]
    ends = [a for a, _ in gaps] + [len(text)]
    spans = [Span(a, b) if a < b and not text[a].isspace() and not text[b - 1].isspace() else _trim(text, a, b)
             for a, b in zip(starts, ends)]
    return [s for s in spans if s]


def _split_long(text: str, span: Span, max_words: int) -> list[Span]:
    if span.end - span.start < 2 * max_words:  # too short to hold more than max_words words
        return [span]
    words = list(re.finditer(r"\S+", text[span.start:span.end]))
    if len(words) <= max_words:
        return [span]
    out = []
    for i in range(0, len(words), max_words):
        chunk = words[i:i + max_words]
        out.append(Span(span.start + chunk[0].start(), span.start + chunk[-1].end()))
    return out


def word_count(text: str) -> int:
    return len(text.split())


def chunk_spans(text: str, target_words: int = 100, max_words: int = 150, overlap_sentences: int = 0,
                blocks: bool = False) -> list[Span]:
    """Passages made of whole sentences: about ``target_words`` words, never more than ``max_words`` (a longer
    sentence is cut on word boundaries); consecutive passages share ``overlap_sentences`` sentences.

    blocks=True: a line break is a hard boundary. Extracted web pages put one block per line, and the extractor may
    reorder blocks (a heading after the body), so a passage that crossed a line could quote text that is not
    contiguous on the page."""
    with _gc_paused():
        return _chunk_spans(text, target_words, max_words, overlap_sentences, blocks)


def _chunk_spans(text: str, target_words: int, max_words: int, overlap_sentences: int, blocks: bool) -> list[Span]:
    sents: list[Span] = []
    for s in split_sentences(text):
        sents.extend(_split_long(text, s, max_words))
    counts = [word_count(text[s.start:s.end]) for s in sents]
    chunks: list[Span] = []
    i = 0
    n = len(sents)
    while i < n:
        j = i
        words = 0
        while j < n and (words == 0 or (words < target_words and words + counts[j] <= max_words
                                        and not (blocks and "\n" in text[sents[j - 1].end:sents[j].start]))):
            words += counts[j]
            j += 1
        chunks.append(Span(sents[i].start, sents[j - 1].end))
        if j >= n:
            break
        back = min(overlap_sentences, j - i - 1)
        if blocks and "\n" in text[sents[j - 1].end:sents[j].start]:
            back = 0  # the chunk ended at a block boundary: the next one starts fresh
        i = j - back if back > 0 else j
    return chunks


_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with what which who whom whose when where why how did does do has have had were been being "
    "from its his her he she him them we you your our i me my".split()
)


@lru_cache(maxsize=1)
def _stemmer():
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:  # pragma: no cover
        return None


# Scripts written without spaces between words (Han, kana, Hangul syllables): a run of them is cut into
# overlapping character bigrams, as Lucene's CJKAnalyzer does, so a question shares tokens with the page that
# answers it. Bump TOKENIZER_VERSION when tokens change: indexes built with another version rebuild their BM25.
TOKENIZER_VERSION = 2
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u31f0-\u31ff"
                  r"\U00020000-\U0002ffff]+")


def _cjk_bigrams(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]


def _split_cjk(words: list[str]) -> tuple[list[str], list[str]]:
    """(other words, CJK bigrams) of word tokens that may mix scripts ("iphone手机" -> iphone, 手机)."""
    other, cjk = [], []
    for w in words:
        pos = 0
        for m in _CJK.finditer(w):
            if m.start() > pos:
                other.append(w[pos:m.start()])
            cjk.extend(_cjk_bigrams(m.group()))
            pos = m.end()
        if pos < len(w):
            other.append(w[pos:])
    return other, cjk


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop words removed, stemmed word tokens; runs of CJK characters as character bigrams (the same
    scheme the index uses). Linear in ``len(text)``."""
    words = _WORD.findall(text.lower())
    cjk: list[str] = []
    if _CJK.search(text):
        words, cjk = _split_cjk(words)
    words = [w for w in words if w not in _STOPWORDS]
    st = _stemmer()
    return (st.stemWords(words) if st is not None else words) + cjk


class SmallBM25:
    """BM25 over a handful of passages (one document's chunks); scores every passage."""

    def __init__(self, docs: list[list[str]], k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self.tfs = [Counter(d) for d in docs]
        self.lens = [len(d) for d in docs]
        self.avg = (sum(self.lens) / len(docs)) if docs else 0.0
        df: Counter[str] = Counter()
        for tf in self.tfs:
            df.update(tf.keys())
        n = len(docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def scores(self, query: list[str]) -> list[float]:
        out = []
        for tf, ln in zip(self.tfs, self.lens):
            s = 0.0
            norm = self.k1 * (1 - self.b + self.b * ln / (self.avg or 1.0))
            for t in set(query):
                f = tf.get(t)
                if f:
                    s += self.idf[t] * f * (self.k1 + 1) / (f + norm)
            out.append(s)
        return out


def rrf(rankings: list[list[int]], k: int = 60) -> dict[int, float]:
    """Reciprocal rank fusion of several rankings (lists of item ids, best first)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank + 1)
    return fused


def normalize_url(url: str) -> str:
    """A key for merging duplicate URLs: no fragment, lower-case scheme/host, no default port, no trailing slash.
    A URL that does not parse (a bad port, a broken bracket) is its own key: the fetcher refuses it later."""
    from urllib.parse import urlsplit, urlunsplit

    url = str(url).strip()
    try:
        p = urlsplit(url)
        port = p.port
    except ValueError:
        return url
    scheme = p.scheme.lower()
    host = (p.hostname or "").lower()
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    path = p.path.rstrip("/") or "/"
    if scheme in ("http", "https"):
        scheme = "https"  # the same page over http and https is one hit
    return urlunsplit((scheme, host, path, p.query, ""))
