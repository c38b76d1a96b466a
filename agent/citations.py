"""The citation check: every [n] in an answer must point at evidence that supports its sentence.

Support is lexical: the share of the sentence's key terms (content words, stemmed; numbers count) that the cited
passage, with its page title, contains. It is cheap, needs no second model, and is what the evaluator reports as its
citation-checking method. A sentence's citations are kept when they support it, replaced by the best supporting
passage when they do not, and dropped when nothing supports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.evidence import Evidence
from agent.text import cited_numbers, coverage, key_terms, replace_citations, sentence_spans, strip_citations

SUPPORT_THRESHOLD = 0.5
UNSETTLED_NOTE = "The evidence found did not settle the question."
_UNSURE = re.compile(r"\b(does not|doesn't|do not|cannot|can't|no)\b[^.]{0,40}\b(say|answer|mention|state|"
                     r"information|evidence|settle)|\bunknown\b|\bnot sure\b", re.IGNORECASE)


@dataclass
class CheckResult:
    text: str
    cited: list[Evidence]  # cited[i] is [i + 1] in `text`
    settled: bool
    removed: int = 0  # numbers that pointed at no evidence
    replaced: int = 0  # citations moved to a passage that supports the sentence
    dropped: int = 0  # citations removed because no passage supports the sentence
    added: int = 0  # uncited sentences given the passage that supports them
    sentences: list[dict] = field(default_factory=list)  # per sentence: text, cites, support


def support(sentence: str, ev: Evidence, question: str = "") -> float:
    """How much of what the sentence claims the passage contains: the share of its key terms found in the passage
    and its title, counting only the terms the question did not already give (when there are any)."""
    return coverage(claim_terms(sentence, question), key_terms(ev.title + " " + ev.text))


def claim_terms(sentence: str, question: str = "") -> set[str]:
    terms = key_terms(strip_citations(sentence))
    return (terms - key_terms(question)) or terms


def _bridge(sentence: str, primary: Evidence, shown: list[Evidence]) -> int | None:
    """A second passage that covers the sentence's restated question terms the first one lacks (a multi-hop
    sentence: "the actress who played X was ambassador" = [the film page] + [the actress page])."""
    terms = key_terms(strip_citations(sentence))
    missing = terms - key_terms(primary.title + " " + primary.text)
    if len(missing) < 2:
        return None
    gain = {n: len(missing & key_terms(e.title + " " + e.text)) for n, e in enumerate(shown, 1) if e is not primary}
    best = max(gain, key=gain.get, default=None)
    return best if best is not None and gain[best] >= max(2, len(missing) // 2) else None


def check_citations(answer: str, shown: list[Evidence], threshold: float = SUPPORT_THRESHOLD,
                    question: str = "") -> CheckResult:
    """Check `answer` (citing `shown` as [1]..[len(shown)]) and renumber what stays in order of first use."""
    result = CheckResult("", [], False)
    pieces, last = [], 0
    for start, end in sentence_spans(answer):
        pieces.append(answer[last:start])
        pieces.append(_check_sentence(answer[start:end], shown, threshold, result, question))
        last = end
    pieces.append(answer[last:])
    checked = "".join(pieces).strip()

    # renumber: the first evidence cited becomes [1], and so on
    order: list[int] = []
    for n in cited_numbers(checked):
        if n not in order:
            order.append(n)
    result.cited = [shown[n - 1] for n in order]
    text = replace_citations(checked, lambda n: order.index(n) + 1 if n in order else None)
    supported = any(s["cites"] and s["support"] >= threshold for s in result.sentences if s["terms"])
    result.settled = supported and not _UNSURE.search(strip_citations(text))
    if not result.settled and UNSETTLED_NOTE not in text:
        text = (text + " " + UNSETTLED_NOTE).strip()
    result.text = text
    return result


def _check_sentence(sentence: str, shown: list[Evidence], threshold: float, result: CheckResult,
                    question: str = "") -> str:
    terms = key_terms(strip_citations(sentence))
    valid = []
    for n in cited_numbers(sentence):
        if 1 <= n <= len(shown):
            valid.append(n)
        else:
            result.removed += 1
    scores = {n: support(sentence, ev, question) for n, ev in enumerate(shown, 1)}  # every passage, once
    keep = [n for n in dict.fromkeys(valid) if scores[n] >= threshold]
    best = max(scores, key=scores.get, default=None)
    best_score = scores[best] if best else 0.0
    if not keep and terms and best and best_score >= threshold and not _UNSURE.search(sentence):
        if valid:
            result.replaced += 1
        else:
            result.added += 1
        keep = [best]
    elif not keep and valid:
        result.dropped += len(valid)
    else:
        result.dropped += len(set(valid) - set(keep))
    if keep and len(keep) == 1 and (second := _bridge(sentence, shown[keep[0] - 1], shown)) is not None:
        keep.append(second)
    bare = strip_citations(sentence)
    marks = "".join(f"[{n}]" for n in keep)
    if bare and bare[-1] in ".!?" and marks:
        text = f"{bare[:-1]} {marks}{bare[-1]}"
    else:
        text = f"{bare} {marks}".strip()
    result.sentences.append({"text": bare, "cites": keep, "terms": bool(terms),
                             "support": max(scores[n] for n in keep) if keep else 0.0})
    return text
