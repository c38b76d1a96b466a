"""What the agent hands to its callers (library users, the CLI, the UI, the evaluator)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, get_args

Mode = Literal["deep", "quick", "closed-book"]  # the one definition; settings, the CLI, the UI and eval use it
MODES: tuple[str, ...] = get_args(Mode)


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
    """One answered question. `short_answer`: a few words (an entity, a date, a number, "yes"/"no") checked against
    the cited passages, or "" when the evidence does not settle it; `text`: the explanation, citing `citations[n-1]`
    as [n]; `follow_ups`: questions about what the sources say that the answer did not cover. `to_dict()` gives the
    JSON that `moesearch ask --json` prints (`text` as "answer")."""

    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    trace: list[Step] = field(default_factory=list)
    mode: Mode = "quick"
    settled: bool = True  # False when the evidence did not settle the question (the text says so too)
    warnings: list[str] = field(default_factory=list)
    reasoning: str | None = None  # a reasoning model's <think> text, kept out of `text`
    fetched_urls: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)  # every page read: {url, title, published}
    follow_ups: list[str] = field(default_factory=list)  # two or three questions the evidence could answer next
    elapsed_s: float = 0.0
    # the answer in a few words (an entity, a date, a number, "yes"/"no"), checked against the cited passages;
    # "" when the evidence does not settle it (agent/short_answer.py, agent/compare.py)
    short_answer: str = ""

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


class Payload:
    """Base of the event payloads. `payload["field"]` and `payload.get("field")` still work for library callers
    written when payloads were dicts; new code reads the fields."""

    kind: ClassVar[EventKind]

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)


@dataclass
class PlanMade(Payload):
    """The sub-questions about to be searched (`awaiting_review`: the caller approves them first)."""

    kind: ClassVar[EventKind] = "plan"
    sub_questions: list[dict[str, Any]]  # {id, question, depends_on}
    awaiting_review: bool = False
    round: int = 1


@dataclass
class SearchDone(Payload):
    kind: ClassVar[EventKind] = "search"
    sub_question: str
    query: str
    hits: int
    urls: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class PageFetched(Payload):
    """A page fetched (ok) or skipped (`reason` says why, e.g. "skipped: the page budget ran out")."""

    kind: ClassVar[EventKind] = "fetch"
    url: str
    ok: bool
    reason: str | None = None
    from_cache: bool = False
    title: str | None = None


@dataclass
class PageRead(Payload):
    kind: ClassVar[EventKind] = "read"
    url: str
    title: str
    passages: int  # passages kept as evidence
    sub_question: str


@dataclass
class NoteWritten(Payload):
    kind: ClassVar[EventKind] = "note"
    sub_question: str  # its id
    question: str
    text: str  # cites evidence ids as [n]


@dataclass
class Reflected(Payload):
    kind: ClassVar[EventKind] = "reflect"
    decision: Literal["answer", "more"]
    new_sub_questions: list[dict[str, Any]] = field(default_factory=list)  # {id, question}
    round: int = 1


@dataclass
class Token(Payload):
    kind: ClassVar[EventKind] = "token"
    text: str  # one streamed piece of the answer
    reset: bool = False  # True: what was shown of the answer so far was reasoning; `text` replaces it all


@dataclass
class WarningRaised(Payload):
    kind: ClassVar[EventKind] = "warning"
    message: str


@dataclass
class AnswerReady(Payload):
    kind: ClassVar[EventKind] = "answer"
    answer: Answer


@dataclass
class ErrorRaised(Payload):
    """The run stopped: `message` is one line (moesearch_core.errors.render_error), `exception` the cause."""

    kind: ClassVar[EventKind] = "error"
    message: str
    exit_code: int
    exception: BaseException | None = None


@dataclass
class Event:
    """One thing that happened while answering, in order; `data` is the payload dataclass of `kind`."""

    kind: EventKind
    data: Payload
    t: float = 0.0  # seconds since the question was asked

    @classmethod
    def of(cls, payload: Payload, t: float = 0.0) -> "Event":
        return cls(payload.kind, payload, t)
