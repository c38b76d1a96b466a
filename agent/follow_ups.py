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
    (r"\bfootball(?:er)?\b|\bplayer\b", "Which teams has {} played for?"),
]


def subject_questions(e: Evidence) -> list[str]:
    """Questions about the passage's page subject, by the kind of page it reads as."""
    x = re.sub(r"\s*\(.*?\)\s*$", "", e.title).strip()
    if not x or re.search(r"\s[x×]\s|[|:]", x):  # a collaboration or list title makes no natural question
        return []
    head = e.text[:300]
    out = []
    if born_date(head) or re.search(r"\bborn\b", head):
        out.append(f"When was {x} born?")
        out += [q.format(x) for pat, q in _OCCUPATIONS if re.search(pat, head, re.IGNORECASE)][:1]
        out.append(f"What is {x} known for?")
    elif re.search(r"\b(?:film|movie)\b", head):
        out += [f"Who directed {x}?", f"Who starred in {x}?", f"When was {x} released?"]
    elif re.search(r"\b(?:band|group|duo)\b", head):
        out += [f"Who are the members of {x}?", f"What albums has {x} released?"]
    elif re.search(r"\b(?:city|town|village|county|municipality|capital|located)\b", head):
        out += [f"Where is {x}?", f"What is the population of {x}?"]
    elif re.search(r"\b(?:company|organi[sz]ation|founded|magazine|newspaper)\b", head):
        out += [f"Who founded {x}?", f"When was {x} founded?"]
    else:
        out.append(f"What is {x}?")
    return out


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
