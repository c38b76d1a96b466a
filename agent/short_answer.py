"""The short answer: the answer in a few words (an entity, a date, a number, "yes"/"no"), or "" when the evidence
does not settle it.

The model writes it as the first sentence of its answer (the answer prompt's tight format: "Cincinnati. Jaws was
directed by ..."), so it costs no second call. It is then checked: an entity, date or number must appear in a cited
passage (or all its words must, in one passage); "yes"/"no" needs a yes/no question and an answer whose citations
support it; a comparison is decided in code (agent/compare.py) when the evidence states both values, and the model's
pick stands only when it names one of the compared things and its citations support it. What fails the check is
dropped (""), never shown.
"""

from __future__ import annotations

import re

from agent.compare import QuestionKind, _norm
from agent.evidence import Evidence
from agent.text import coverage, key_terms, strip_citations

MAX_WORDS = 8  # longer than this, the first sentence is an explanation, not a short answer
_LEAD = re.compile(r"^(?:the\s+)?(?:short\s+)?answer\s*(?:is\s*)?[:\-]?\s*", re.IGNORECASE)


def first_clause(text: str) -> str:
    """The answer's first sentence (up to ". " not after an initial, ";" or a citation), without citations."""
    text = _LEAD.sub("", text.strip())
    # a clause ends at ". " (not after an initial), ";", a citation, or ", " before a lowercase word ("Sergio Pérez,
    # the other ...") but not inside a date ("October 8, 1970") or a place ("Cincinnati, Ohio")
    m = re.search(r"(?<![A-Z])(?<!\b[A-Z][a-z])[.!?;](?:\s|$)|\[\d+\]|\n|:\s|,\s+(?=[a-z])", text)
    head = text[:m.start()] if m else text
    return strip_citations(head).strip(" \"'.,;:")


_NEGATION = re.compile(r"\b(not|no|never|neither|nor|different|differ|n't)\b|n't\b", re.IGNORECASE)


def candidate(text: str, kind: QuestionKind, question: str = "") -> str:
    """What the model gave as its short answer, or "" (empty, too long or malformed). To a yes/no question, a
    statement that restates the question ("A and B are both from the US [1].") is a yes, one that negates it a no."""
    head = first_clause(text)
    yes_no = re.match(r"^(yes|no)\b", head, re.IGNORECASE)
    if kind.kind == "yes_no" or kind.yes_no:
        if yes_no:
            return yes_no.group(1).lower()
        return _statement_yes_no(head, question)
    if yes_no or not head or len(head.split()) > MAX_WORDS or not re.search(r"\w", head):
        return ""
    return head


def _statement_yes_no(statement: str, question: str) -> str:
    """"yes"/"no" from a statement that restates most of the question's key terms; "" from anything else."""
    terms = key_terms(question)
    if not statement or not terms or coverage(terms, key_terms(statement)) < 0.6:
        return ""
    return "no" if _NEGATION.search(statement) else "yes"


def appears_in(short: str, passages: list[Evidence]) -> bool:
    """The short answer is in a passage (or its title), as a phrase or word for word within one passage."""
    target = _norm(short)
    if not target:
        return False
    words = set(target.split())
    for e in passages:
        hay = _norm(e.title + " " + e.text)
        if f" {target} " in f" {hay} " or words <= set(hay.split()):
            return True
    return False


def check(short: str, kind: QuestionKind, cited: list[Evidence], settled: bool) -> str:
    """The short answer if the cited passages support it, else ""."""
    if not short or not settled or not cited:
        return ""
    if short in ("yes", "no"):
        return short if (kind.kind == "yes_no" or kind.yes_no) else ""
    if kind.kind == "comparison" and not any(_norm(short) == _norm(e) for e in kind.entities):
        return ""
    return short if appears_in(short, cited) else ""
