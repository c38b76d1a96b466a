"""Answer, retrieval and citation metrics, and bootstrap confidence intervals.

Answer scoring follows the official HotpotQA / SQuAD evaluation scripts: lowercase, delete ASCII punctuation, drop
the words a/an/the, collapse whitespace; EM = normalised strings equal; F1 = token-bag overlap, best over the gold
answers; if either side normalises to yes/no/noanswer and they differ, F1 is 0. Citation markers like ``[2]`` are
removed from the prediction before scoring (they are not part of the answer).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPECIAL = ("yes", "no", "noanswer")
CITATION_MARK = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


# ---------------------------------------------------------------------------------------------------- answers
# The same rules score the short answer (the headline) and the whole answer text (diluted by its sentences).
def normalize_answer(s: str) -> str:
    """HotpotQA/SQuAD normalisation: lower, remove punctuation, remove articles, collapse whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def strip_citations(text: str) -> str:
    """The answer text without ``[n]`` markers and without a trailing sources list."""
    return " ".join(CITATION_MARK.sub(" ", strip_sources(text)).split())


def _f1_one(prediction: str, gold: str) -> tuple[float, float, float]:
    p, g = normalize_answer(prediction), normalize_answer(gold)
    if (p in _SPECIAL or g in _SPECIAL) and p != g:
        return 0.0, 0.0, 0.0
    pt, gt = p.split(), g.split()
    same = sum((Counter(pt) & Counter(gt)).values())
    if same == 0:
        return 0.0, 0.0, 0.0
    precision, recall = same / len(pt), same / len(gt)
    return 2 * precision * recall / (precision + recall), precision, recall


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    p = normalize_answer(strip_citations(prediction))
    return float(any(p == normalize_answer(g) for g in golds))


def f1(prediction: str, golds: Sequence[str]) -> float:
    pred = strip_citations(prediction)
    return max((_f1_one(pred, g)[0] for g in golds), default=0.0)


def short_answer_scores(short_answer: str | None, golds: Sequence[str]) -> tuple[float | None, float | None]:
    """(EM, F1) of a short answer (an entity, a date, "yes"/"no") under the HotpotQA rules above; (None, None) when
    the answer has no short answer at all (made before short answers existed), (0, 0) when it is empty (not
    settled). HotpotQA's yes/no rule: "Yes." scores 1 against "yes", while "yes" against "no", or "Yes, both are"
    against "yes", scores 0."""
    if short_answer is None:
        return None, None
    return exact_match(short_answer, golds), f1(short_answer, golds)


def accuracy(prediction: str, golds: Sequence[str]) -> float:
    """1 when a normalised gold answer occurs in the normalised prediction as whole words ("no" is not in "not")."""
    p = f" {normalize_answer(strip_citations(prediction))} "
    return float(any(normalize_answer(g) and f" {normalize_answer(g)} " in p for g in golds))


def answer_in_texts(golds: Sequence[str], texts: Iterable[str]) -> float | None:
    """1 when a normalised gold answer occurs (as whole words) in one of the texts: the answer was in the evidence."""
    gs = [normalize_answer(g) for g in golds]
    gs = [g for g in gs if g and g not in _SPECIAL]  # "yes"/"no" are never spelled out in the evidence
    if not gs:
        return None
    for t in texts:
        padded = f" {normalize_answer(t)} "
        if any(f" {g} " in padded for g in gs):
            return 1.0
    return 0.0


# -------------------------------------------------------------------------------------------------- retrieval
def normalize_title(title: str) -> str:
    return " ".join("".join(ch for ch in title.lower() if ch not in _PUNCT).split())


def title_recall(gold_titles: Iterable[str], found_titles: Iterable[str]) -> float | None:
    """Share of gold titles among found titles (normalised compare); None when there are no gold titles."""
    gold = {normalize_title(t) for t in gold_titles if t}
    if not gold:
        return None
    found = {normalize_title(t) for t in found_titles if t}
    return len(gold & found) / len(gold)


# -------------------------------------------------------------------------------------------------- citations
CITATION_METHOD = (
    "Lexical support check. The answer is split into sentences (a citation marker after the full stop belongs to the "
    "sentence before it). Each (sentence, [n]) pair is valid when [n] names one of the answer's citations, its quote "
    "is taken from the page it cites when that page's text is known (the local web's pages; skipped otherwise): "
    "verbatim after whitespace/case normalisation, or with at least half its words in lines/sentences verbatim on "
    "the page and every other line at most 12 words (a title or site tagline the extractor kept; only the on-page "
    "part then counts), "
    "and at least {thr:.0%} of the sentence's content words (lowercased, punctuation and stop words removed, "
    "compared on their first 5 letters; words of the question are left out when the sentence has others, so "
    "restating the question earns nothing) occur in that quote. Precision = valid pairs / all pairs; recall = sentences with at least one valid pair / "
    "sentences with content words. Answers without citations have no precision (left out of its mean) and recall 0.")

SUPPORT_THRESHOLD = 0.5

_STOP = set("""a an the and or but if of to in on at by for with from as is are was were be been being it its this that
these those there here he she they them his her their we you i me my our your who whom whose which what when where
why how not no do does did has have had having than then so such can could would should will shall may might must
also into about over under after before between during while both either neither each other any some all most more
only very just one two first second according evidence based answer question""".split())
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=\S)")


def content_words(text: str) -> list[str]:
    words = normalize_answer(CITATION_MARK.sub(" ", text)).split()
    return [w[:5] for w in words if w not in _STOP]


def split_sentences(text: str) -> list[str]:
    """Sentences of an answer; markers that open a sentence (``Paris. [1] It ...``) move to the previous one."""
    text = strip_sources(text).strip()
    if not text:
        return []
    raw = [s for s in _SENT_SPLIT.split(text) if s.strip()]
    out: list[str] = []
    for s in raw:
        m = re.match(r"^((?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])+)\s*(.*)$", s, re.DOTALL)
        if m and out:
            out[-1] = out[-1] + " " + m.group(1).strip()
            s = m.group(2)
        if s.strip():
            out.append(s.strip())
    return out


def strip_sources(text: str) -> str:
    return re.split(r"\n\s*(?:sources|references)\s*:?\s*\n", text, maxsplit=1, flags=re.IGNORECASE)[0]


def markers(sentence: str) -> list[int]:
    nums: list[int] = []
    for m in CITATION_MARK.finditer(sentence):
        nums.extend(int(x) for x in re.split(r"\s*[,;]\s*", m.group(1)))
    return list(dict.fromkeys(nums))


def _norm_space(s: str) -> str:
    return " ".join(s.lower().split())


_PIECE_SPLIT = re.compile(r"\n+|(?<=[.!?])\s+")


FURNITURE_WORDS = 12  # the longest line of page furniture (a title, a site tagline) forgiven in a quote


def on_page_part(quote: str, page: str) -> str | None:
    """The part of `quote` taken from `page`, or None when the quote is not from the page.

    Verbatim (whitespace and case aside) gives the whole quote. Otherwise the quote is split into pieces (lines,
    sentences): the pieces verbatim on the page must hold at least half its words, and every other piece must be
    short (at most FURNITURE_WORDS words); only the on-page pieces are returned. This forgives page furniture an
    extractor kept around the article (a repeated title, a site tagline) but never lets it count as support."""
    q, p = _norm_space(quote), _norm_space(page)
    if not q:
        return None
    if q in p:
        return quote
    pieces = [_norm_space(x) for x in _PIECE_SPLIT.split(quote) if x.strip()]
    total = sum(len(x.split()) for x in pieces)
    kept = [x for x in pieces if x in p]
    stray = [x for x in pieces if x not in p]
    if total and sum(len(x.split()) for x in kept) * 2 >= total and \
            all(len(x.split()) <= FURNITURE_WORDS for x in stray):
        return " ".join(kept)
    return None


def quote_on_page(quote: str, page: str) -> bool:
    return on_page_part(quote, page) is not None


def supports(sentence: str, quote: str, threshold: float = SUPPORT_THRESHOLD,
             ignore: set[str] | frozenset[str] = frozenset()) -> bool:
    """At least `threshold` of the sentence's content words occur in the quote. Words in `ignore` (the question's)
    are left out when the sentence says anything beyond them, so restating the question earns no support."""
    words = content_words(sentence)
    if not words:
        return bool(quote.strip())
    new = [w for w in words if w not in ignore]
    words = new or words
    have = set(content_words(quote))
    return sum(w in have for w in words) / len(words) >= threshold


@dataclass
class CitationScore:
    precision: float | None  # None when the answer cites nothing
    recall: float | None  # None when the answer has no sentence with content words
    pairs: int = 0
    valid_pairs: int = 0
    sentences: int = 0
    supported_sentences: int = 0
    details: list[dict[str, Any]] = field(default_factory=list)


def citation_quality(text: str, citations: Sequence[Any], page_texts: dict[str, str] | None = None,
                     threshold: float = SUPPORT_THRESHOLD, question: str = "") -> CitationScore:
    """Score an answer's citations; `citations` are objects or dicts with ``n``, ``url``, ``quote``.

    `page_texts` (url -> text) lets the check confirm each quote is from its page; `question` names the words a
    sentence may repeat without support."""
    ignore = set(content_words(question)) if question else set()
    by_n: dict[int, Any] = {}
    for c in citations:
        n = c["n"] if isinstance(c, dict) else c.n
        by_n[int(n)] = c
    pairs = valid = sent_n = supported_n = 0
    details = []
    for sentence in split_sentences(text):
        if not content_words(sentence):
            continue
        sent_n += 1
        ok_any = False
        for n in markers(sentence):
            pairs += 1
            c = by_n.get(n)
            reason = "ok"
            if c is None:
                reason = "no such citation"
            else:
                quote = c["quote"] if isinstance(c, dict) else c.quote
                url = c["url"] if isinstance(c, dict) else c.url
                page = (page_texts or {}).get(url)
                part = quote or ""
                if page is not None:
                    part = on_page_part(part, page)
                if part is None:
                    reason = "quote not on page"
                elif not supports(sentence, part, threshold, ignore):
                    reason = "quote does not support sentence"
            ok = reason == "ok"
            valid += ok
            ok_any |= ok
            details.append({"sentence": sentence, "n": n, "valid": ok, "reason": reason})
        supported_n += ok_any
    return CitationScore(valid / pairs if pairs else None, supported_n / sent_n if sent_n else None,
                         pairs, valid, sent_n, supported_n, details)


# ------------------------------------------------------------------------------------------------- aggregates
@dataclass
class Estimate:
    mean: float | None
    lo: float | None
    hi: float | None
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "n": self.n}

    def fmt(self, scale: float = 100.0, digits: int = 1) -> str:
        if self.mean is None:
            return "n/a"
        if self.lo is None or self.n < 2:
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f} [{self.lo * scale:.{digits}f}, {self.hi * scale:.{digits}f}]"


def bootstrap_ci(values: Iterable[float | None], *, resamples: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> Estimate:
    """Mean with a percentile bootstrap (1 - alpha) interval; None values are left out."""
    xs = np.array([float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))])
    if xs.size == 0:
        return Estimate(None, None, None, 0)
    mean = float(xs.mean())
    if xs.size == 1:
        return Estimate(mean, None, None, 1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, xs.size, size=(resamples, xs.size))
    means = xs[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Estimate(mean, float(lo), float(hi), int(xs.size))


def percentile(values: Sequence[float], q: float) -> float | None:
    xs = [v for v in values if v is not None]
    return float(np.percentile(xs, q)) if xs else None
