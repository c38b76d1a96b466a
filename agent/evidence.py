"""The evidence of one question: passages kept from the pages read, numbered, chosen to fit the model's context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from agent.text import cited_numbers, coverage, defuse, key_terms


@dataclass
class Evidence:
    id: int  # stable within the question (notes cite it); renumbered as [n] in the answer prompt
    url: str
    title: str
    text: str  # exactly as in the extracted page, so it can be quoted
    start: int
    end: int
    score: float  # the reader's ranking score for the sub-question that found it
    sub_question: str
    published: str | None = None

    def prompt_text(self) -> str:
        """The passage as a model may read it: instruction-like sentences out, the quoting format neutralised."""
        return defuse(self.text)[0]

    def prompt_title(self) -> str:
        """The page title (untrusted too) as a model may read it."""
        return defuse(self.title)[0]


class EvidencePool:
    """Every passage kept for one question, once each (same page and span = same passage)."""

    def __init__(self, items: list[Evidence] | tuple[Evidence, ...] = ()) -> None:
        self.items: list[Evidence] = []
        self._keys: dict[tuple[str, int, int], Evidence] = {}
        for ev in items:
            self._keys.setdefault((ev.url, ev.start, ev.end), ev)
            self.items.append(ev)

    def add(self, passage, sub_question: str) -> Evidence:
        key = (passage.url, passage.start, passage.end)
        if key in self._keys:
            return self._keys[key]
        ev = Evidence(len(self.items) + 1, passage.url, passage.title, passage.text, passage.start, passage.end,
                      float(passage.score), sub_question, getattr(passage, "published", None))
        self.items.append(ev)
        self._keys[key] = ev
        return ev

    def get(self, id: int) -> Evidence | None:
        return next((ev for ev in self.items if ev.id == id), None)

    def __len__(self) -> int:
        return len(self.items)

    def select(self, question: str, notes: list[str], limit: int, token_budget: int,
               count_tokens: Callable[[str], int]) -> tuple[list[Evidence], int]:
        """The passages for the answer prompt, best first, within `limit` and `token_budget`.

        Order: passages a note cited, then by how much of the question (and the notes' answers) they cover, then by
        the reader's score. Returns (chosen, number left out because of the token budget).
        """
        cited = {n for note in notes for n in cited_numbers(note)}
        terms = key_terms(question) | key_terms(" ".join(notes))

        def rank(ev: Evidence) -> tuple:
            return (ev.id in cited, coverage(terms, key_terms(ev.title + " " + ev.text)), ev.score)

        chosen, used, cut = [], 0, 0
        for ev in sorted(self.items, key=rank, reverse=True):
            if len(chosen) >= limit:
                break
            cost = count_tokens(ev.title + ev.prompt_text()) + 8
            if used + cost > token_budget:
                cut += 1
                continue
            chosen.append(ev)
            used += cost
        return chosen, cut

