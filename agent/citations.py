"""The citation check: every [n] in an answer must point at evidence that supports the clause it is attached to.

Support is lexical: the share of the sentence's key terms (content words, stemmed; numbers count) that the cited
passage, with its page title, contains. It is cheap, needs no second model, and is what the evaluator reports as its
citation-checking method. Each sentence is split into clauses (at citation markers, and at conjunctions between two
clauses that each make a claim); a clause's citations are kept when they support it, replaced by the best supporting
passage when they do not, and dropped when nothing supports it. Markers of any shape ([1, 3], [2-4], [^2], 【1】)
are read and rewritten as [n]. Passages are compared as the model saw them (instruction-like sentences taken out), and
a sentence that itself reads as an instruction is removed from the answer, so copying a page's injection never passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.evidence import Evidence
from agent.text import (cited_numbers, coverage, drop_footnote_definitions, key_terms, looks_like_injection, markers,
                        replace_citations, sentence_spans, strip_citations)

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
    instructions: int = 0  # sentences removed because they read as instructions (copied from a page)
    sentences: list[dict] = field(default_factory=list)  # per sentence: text, cites, support


def support(sentence: str, ev: Evidence, question: str = "") -> float:
    """How much of what the sentence claims the passage contains: the share of its key terms found in the passage
    and its title, counting only the terms the question did not already give (when there are any)."""
    return coverage(claim_terms(sentence, question), passage_terms(ev))


def passage_terms(ev: Evidence) -> set[str]:
    """Key terms of the passage as the model was shown it (title and text, instruction-like sentences out)."""
    return key_terms(ev.prompt_title() + " " + ev.prompt_text())


def claim_terms(sentence: str, question: str = "") -> set[str]:
    terms = key_terms(strip_citations(sentence))
    return (terms - key_terms(question)) or terms


def _bridge(sentence: str, primary: int, shown_terms: list[set[str]]) -> int | None:
    """A second passage that covers the sentence's restated question terms the first one lacks (a multi-hop
    sentence: "the actress who played X was ambassador" = [the film page] + [the actress page]). `primary` is the
    number of the passage kept; shown_terms[n - 1] are passage n's key terms."""
    terms = key_terms(strip_citations(sentence))
    missing = terms - shown_terms[primary - 1]
    if len(missing) < 2:
        return None
    gain = {n: len(missing & t) for n, t in enumerate(shown_terms, 1) if n != primary}
    best = max(gain, key=gain.get, default=None)
    return best if best is not None and gain[best] >= max(2, len(missing) // 2) else None


def check_citations(answer: str, shown: list[Evidence], threshold: float = SUPPORT_THRESHOLD,
                    question: str = "") -> CheckResult:
    """Check `answer` (citing `shown` as [1]..[len(shown)]) and renumber what stays in order of first use."""
    result = CheckResult("", [], False)
    # the model's own leading "Answer:" label is not a fake prompt block
    answer = re.sub(r"^\s*answer\s*:\s*", "", drop_footnote_definitions(answer), flags=re.IGNORECASE)
    shown_terms = [passage_terms(ev) for ev in shown]  # once: defusing a passage is the costly part
    pieces, last = [], 0
    for start, end in sentence_spans(answer):
        pieces.append(answer[last:start])
        pieces.append(_check_sentence(answer[start:end], shown, shown_terms, threshold, result, question))
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


# Where a second clause starts: ", and" / "; " / "but" / "while", or a bare "and" before a verb or a pronoun
# ("and are about the size of a cat"); not "Kiss and Tell", "Tom and Jerry".
_CONJUNCTION = re.compile(
    r",\s+(?=(?:and|but|while|whereas|although|yet)\s)|;\s+|\s+(?=(?:but|while|whereas|although)\s)"
    r"|\s+(?=and\s+(?:is|are|was|were|has|have|had|it|its|they|their|he|his|she|her|can|could|will|would|"
    r"lives?|lived|measures?|weighs?|grows?|became|becomes)\b)")


def clauses(sentence: str) -> list[tuple[str, list[int]]]:
    """The sentence as (clause text without markers, numbers cited right after it). A sentence splits after each
    marker ("lives on Rottnest [1] and is the size of a cat [2]"), and an uncited stretch also at a conjunction
    when both sides make a claim of two or more key terms ("A and B [1]": each side gets [1] to check)."""
    out: list[tuple[str, list[int]]] = []
    last = 0
    for m in markers(sentence):
        text = sentence[last:m.start()]
        if out and not text.strip():
            out[-1][1].extend(m.numbers)  # [1][2] or [1] [2]: one group
        else:
            out.extend(_at_conjunctions(text, m.numbers))
        last = m.end()
    tail = sentence[last:]
    if out and not key_terms(tail):
        out.append((tail, []))  # the closing punctuation
    elif tail:
        out.extend(_at_conjunctions(tail, []))
    return out


def _at_conjunctions(text: str, numbers: list[int]) -> list[tuple[str, list[int]]]:
    pieces, start = [], 0
    for m in _CONJUNCTION.finditer(text):
        left, right = text[start:m.start()], text[m.start():]
        if len(key_terms(left)) >= 2 and len(key_terms(right)) >= 2:
            pieces.append(left)
            start = m.start()
    pieces.append(text[start:])
    return [(p, list(numbers)) for p in pieces]


def _check_sentence(sentence: str, shown: list[Evidence], shown_terms: list[set[str]], threshold: float,
                    result: CheckResult, question: str = "") -> str:
    """The sentence with each clause's citations checked; '' when the sentence reads as an instruction."""
    if looks_like_injection(strip_citations(sentence)):
        result.instructions += 1
        result.dropped += len(cited_numbers(sentence))
        return ""
    return "".join(_check_clause(text, nums, shown, shown_terms, threshold, result, question)
                   for text, nums in clauses(sentence))


def _check_clause(clause: str, cited: list[int], shown: list[Evidence], shown_terms: list[set[str]],
                  threshold: float, result: CheckResult, question: str) -> str:
    terms = key_terms(clause)
    if not terms and not cited:
        return clause
    valid = []
    for n in cited:
        if 1 <= n <= len(shown):
            valid.append(n)
        else:
            result.removed += 1
    claim = claim_terms(clause, question)
    scores = {n: coverage(claim, t) for n, t in enumerate(shown_terms, 1)}  # every passage, once
    keep = [n for n in dict.fromkeys(valid) if scores[n] >= threshold]
    best = max(scores, key=scores.get, default=None)
    best_score = scores[best] if best else 0.0
    if not keep and terms and best and best_score >= threshold and not _UNSURE.search(clause):
        if valid:
            result.replaced += 1
        else:
            result.added += 1
        keep = [best]
    elif not keep and valid:
        result.dropped += len(valid)
    else:
        result.dropped += len(set(valid) - set(keep))
    if keep and len(keep) == 1 and (second := _bridge(clause, keep[0], shown_terms)) is not None:
        keep.append(second)
    result.sentences.append({"text": clause.strip(), "cites": keep, "terms": bool(terms),
                             "support": max(scores[n] for n in keep) if keep else 0.0})
    return _with_marks(clause, keep)


def _with_marks(clause: str, keep: list[int]) -> str:
    """The clause with [n] marks after its words, before its closing punctuation; its leading space kept."""
    lead = clause[:len(clause) - len(clause.lstrip())]
    core = clause.strip()
    body = core.rstrip(".,;:!?。！？")
    punct = core[len(body):]
    marks = "".join(f"[{n}]" for n in keep)
    return f"{lead}{body} {marks}{punct}" if marks and body else f"{lead}{core}"
