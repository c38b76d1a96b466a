"""Plain-text helpers shared by the graph: key terms, sentence splitting, lexical support, injection filtering."""

from __future__ import annotations

import re
import unicodedata

STOPWORDS = frozenset("""
a an the and or but nor of to in on at by for with from into onto over under about as is are was were be been being
am do does did doing done have has had having it its it's this that these those there here which who whom whose what
when where why how than then so such not no yes can could would should will shall may might must also very more most
less least same other another any all both each few many much some one first second his her hers him he she they them
their theirs we us our ours you your yours i me my mine if while during before after above below up down out off again
further once only own just too s t don now between through against because until via per whether either neither
according said says say called known named
""".split())

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_SENT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def stem(word: str) -> str:
    """A crude stem: possessives and common suffixes off, then at most 6 characters (Arthur's ~ Arthur, started ~ start)."""
    w = re.sub(r"['’]s$", "", word)
    for suf in ("ing", "edly", "ed", "es", "s"):
        if len(w) > len(suf) + 3 and w.endswith(suf):
            w = w[: -len(suf)]
            break
    return w[:6]


def key_terms(text: str) -> set[str]:
    """Content terms of a text: no stop words, no citation markers, stemmed. Numbers count (years matter)."""
    text = _CITE.sub(" ", text)
    return {stem(w) for w in words(text) if w not in STOPWORDS and (len(w) > 2 or w.isdigit())}


def coverage(claim_terms: set[str], passage_terms: set[str]) -> float:
    """Share of the claim's key terms found in the passage (1.0 for a claim without key terms)."""
    if not claim_terms:
        return 1.0
    return len(claim_terms & passage_terms) / len(claim_terms)


def split_sentences(text: str) -> list[str]:
    """Sentences of a text, split at terminal punctuation followed by a capital or digit, and at blank lines."""
    out = []
    for block in re.split(r"\n\s*\n|\n(?=[-*•]\s)", text):
        block = block.strip()
        if block:
            out.extend(s.strip() for s in _SENT.split(block) if s.strip())
    return out


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, so quotes can be cut exactly from it."""
    spans, pos = [], 0
    for s in split_sentences(text):
        i = text.find(s, pos)
        if i < 0:
            continue
        spans.append((i, i + len(s)))
        pos = i + len(s)
    return spans


def cited_numbers(text: str) -> list[int]:
    out = []
    for m in _CITE.finditer(text):
        out.extend(int(n) for n in re.split(r"\s*[,;]\s*", m.group(1)))
    return out


def strip_citations(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", _CITE.sub("", text)).strip()


def replace_citations(text: str, fn) -> str:
    """Rewrite every [n] / [n, m] marker: fn(n) -> new number or None to drop it."""

    def sub(m: re.Match) -> str:
        nums = []
        for n in re.split(r"\s*[,;]\s*", m.group(1)):
            new = fn(int(n))
            if new is not None and new not in nums:
                nums.append(new)
        return "".join(f"[{n}]" for n in nums)

    return _CITE.sub(sub, text)


# Page text is untrusted. Sentences that address the reader as an assistant are taken out before a model sees them.
_INJECTION = re.compile(
    r"(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(instructions?|prompts?|rules|directions|guidelines|above|previous)"
    r"|\b(system prompt|you are now|new instructions?|as an ai( language)? model|assistant:|developer mode)"
    r"|\b(reply|respond|answer|say|output|print|write)\s+(only\s+|with\s+|exactly\s+|just\s+)*[\"'“‘]"
    r"|\b(do not|don't)\s+(cite|mention|tell)",
    re.IGNORECASE,
)


def looks_like_injection(text: str) -> bool:
    return bool(_INJECTION.search(text))


def defuse(text: str) -> tuple[str, int]:
    """Page text made safe to quote to a model: instruction-like sentences replaced by a marker, our delimiters
    neutralised. Returns (text, number of sentences removed)."""
    removed = 0
    parts = []
    for s in split_sentences(text) or [text]:
        if looks_like_injection(s):
            removed += 1
            parts.append("[text removed: it addressed instructions to the reader]")
        else:
            parts.append(s)
    safe = " ".join(parts)
    safe = safe.replace("<<<", "«").replace(">>>", "»")
    return safe, removed


def truncate_words(text: str, n: int) -> str:
    ws = text.split()
    return " ".join(ws[:n]) + (" …" if len(ws) > n else "")
