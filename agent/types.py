"""What the agent hands to its callers (library users, the CLI, the UI, the evaluator)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Mode = Literal["deep", "quick", "closed-book"]


@dataclass
class Citation:
    n: int  # the number used as [n] in the answer text
    url: str
    title: str
    quote: str  # the exact passage text, as it stands in the extracted page
    published: str | None = None


@dataclass
class Step:
    """One step of the trace: what ran, for how long, at what token cost."""

    kind: str  # plan | search | fetch | read | note | reflect | answer | check
    label: str
    elapsed_s: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    trace: list[Step] = field(default_factory=list)
    mode: str = "quick"
    settled: bool = True  # False when the evidence did not settle the question (the text says so too)
    warnings: list[str] = field(default_factory=list)
    reasoning: str | None = None  # a reasoning model's <think> text, kept out of `text`
    fetched_urls: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)  # every page read: {url, title, published}
    follow_ups: list[str] = field(default_factory=list)  # two or three questions the evidence could answer next
    elapsed_s: float = 0.0

    @property
    def tokens_in(self) -> int:
        return sum(s.tokens_in for s in self.trace)

    @property
    def tokens_out(self) -> int:
        return sum(s.tokens_out for s in self.trace)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["answer"] = d.pop("text")
        d["tokens_in"], d["tokens_out"] = self.tokens_in, self.tokens_out
        return d


EventKind = Literal["plan", "search", "fetch", "read", "note", "reflect", "token", "warning", "answer", "error"]


@dataclass
class Event:
    """One thing that happened while answering, in order. `data` depends on `kind`:

    plan: sub_questions (list of {id, question, depends_on}), awaiting_review (bool)
    search: query, hits (int), urls (list), warnings (list)
    fetch: url, ok (bool), reason (str, when skipped), from_cache (bool)
    read: url, title, passages (int kept)
    note: sub_question, text
    reflect: decision ("answer" | "more"), new_sub_questions
    token: text (one streamed piece of the answer)
    warning: message
    answer: answer (an Answer)
    error: message, exit_code
    """

    kind: EventKind
    data: dict[str, Any] = field(default_factory=dict)
    t: float = 0.0  # seconds since the question was asked
