"""Follow-up questions from the evidence: what the passages say about the things they name that the answer did not
cover, asked as a person would ("When was Terry Richardson born?", "What other films did Steven Spielberg direct?").

Deterministic (no model call): each passage's page subject gets the questions its kind of page answers (a person:
born, known for; a film: director, cast; a place: where, population; an organisation: founder), and the people a
passage names in a relation ("directed by X", "written by X", "founded by X") get theirs. A question whose words the
question and the answer already cover is skipped.
"""

from __future__ import annotations

import re

from agent.compare import born_date
from agent.evidence import Evidence
from agent.text import coverage, key_terms

_NAME = r"((?:[A-Z][\w'’.-]+\s){0,3}[A-Z][\w'’-]+)"
_RELATIONS = [  # a pattern naming a person in a passage -> the question about that person
    (re.compile(r"\bdirected by\s+" + _NAME), "What other films did {} direct?"),
    (re.compile(r"\bwritten by\s+" + _NAME), "What else did {} write?"),
    (re.compile(r"\bfounded by\s+" + _NAME), "What else is {} known for?"),
    (re.compile(r"\bstarring\s+" + _NAME), "What other films has {} appeared in?"),
    (re.compile(r"\bproduced by\s+" + _NAME), "What else did {} produce?"),
]
_OCCUPATIONS = [  # a word of a person's page -> what people ask about such a person
    (r"\bfilm director|\bdirector\b", "What films did {} direct?"),
    (r"\bactor\b|\bactress\b", "What films has {} appeared in?"),
    (r"\bnovelist\b|\bwriter\b|\bauthor\b|\bpoet\b", "What books did {} write?"),
    (r"\bsinger\b|\bmusician\b|\brapper\b|\bsongwriter\b", "What songs is {} known for?"),
    (r"\bpolitician\b", "What offices has {} held?"),
    (r"\bfootballer\b|\b(?:football|basketball|baseball|hockey|tennis) player\b", "Which teams has {} played for?"),
    (r"\bphotographer\b|\bmodel\b|\bpainter\b|\bartist\b|\bjournalist\b|\bphilosopher\b|\bscientist\b|"
     r"\bbusinessman\b|\bbusinesswoman\b|\bcomposer\b|\bproducer\b|\bcomedian\b", "What is {} known for?"),
]


def _is_a(first: str, pattern: str) -> bool:
    """The page's first sentence says the subject is/was a ... <pattern> ("Jaws is a 1975 American thriller film")."""
    return bool(re.search(r"\b(?:is|was|are|were)\s+(?:an?|the|one of)\b[^.;]{0,90}?\b(?:" + pattern + r")\b",
                          first, re.IGNORECASE))


def subject_questions(e: Evidence) -> list[str]:
    """Questions about the passage's page subject, by what its first sentence says the subject is."""
    x = re.sub(r"\s*\(.*?\)\s*$", "", e.title).strip()
    if not x or re.search(r"\s[x×]\s|[|:]|^(?:list|lists|index|timeline|outline) of\b", x, re.IGNORECASE):
        return []  # a collaboration, list or index page makes no natural question
    first = re.split(r"(?<=[a-z0-9)\]])\.\s", e.text[:400])[0]
    jobs = [q.format(x) for pat, q in _OCCUPATIONS if re.search(pat, first, re.IGNORECASE)][:1]
    if born_date(first) or jobs:
        return [f"When was {x} born?"] + jobs + [f"What is {x} known for?"]
    if _is_a(first, "film|movie|documentary"):
        return [f"Who directed {x}?", f"Who starred in {x}?", f"When was {x} released?"]
    if _is_a(first, "band|duo|trio|group"):
        return [f"Who are the members of {x}?", f"What albums has {x} released?"]
    if _is_a(first, "album|single|song"):
        return [f"Who recorded {x}?", f"When was {x} released?"]
    if _is_a(first, "city|town|village|county|municipality|capital|district|province|island|region"):
        return [f"Where is {x}?", f"What is the population of {x}?"]
    if _is_a(first, "company|organi[sz]ation|magazine|newspaper|university|college|school|club|team|brand"):
        return [f"Who founded {x}?", f"When was {x} founded?"]
    if _is_a(first, "novel|book|play|poem|series|video game|game"):
        return [f"Who wrote {x}?", f"When was {x} published?"]
    return [f"What is {x}?"]


def relation_questions(e: Evidence) -> list[str]:
    return [q.format(m.group(1).strip()) for pat, q in _RELATIONS for m in pat.finditer(e.text)][:2]


def follow_ups(question: str, answer_text: str, cited: list[Evidence], others: list[Evidence],
               limit: int = 3) -> list[str]:
    """Up to `limit` questions (cited passages first, then the other evidence by score) that the question and the
    answer do not already cover."""
    covered = key_terms(question + " " + answer_text)
    out: list[str] = []
    pool = list(cited) + sorted((e for e in others if e not in cited), key=lambda e: -e.score)
    for e in pool:
        for q in relation_questions(e) + subject_questions(e):
            general = q.endswith(" known for?")  # asks for more than the answer said, whatever its words
            if q in out or (not general and coverage(key_terms(q), covered) >= 0.99):
                continue
            out.append(q)
            break  # one question per passage, so the suggestions range over the sources
        if len(out) >= limit:
            break
    return out
