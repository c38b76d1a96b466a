"""Questions of the kinds people ask, and comparisons decided in code from values the evidence states.

`question_kind` reads a question's shape: a comparison of two named things ("Who is older, A or B?", "Which came
first, A or B?", "Which is taller, A or B?", "Is A older than B?"), a yes/no question ("Are both A and B ...?"), or
anything else (a bridge or plain factoid question). `decide` finds, for each compared entity, the value the
comparison needs in the evidence (a born date, a founding/release date, a number with its unit) and decides the
comparison in code: a weak model states values well but compares them badly.

Dates are read in the forms Wikipedia uses ("8 October 1970", "October 8, 1970", "October 1970", "1970"); numbers
with metric and imperial units are converted to one base unit per dimension before comparing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.evidence import Evidence
from agent.text import fold

MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
_MON = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|" \
       r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DATE = re.compile(
    rf"\b(?P<d1>\d{{1,2}})\s+(?P<m1>{_MON})\s+(?P<y1>\d{{3,4}})\b"
    rf"|\b(?P<m2>{_MON})\s+(?P<d2>\d{{1,2}}),?\s+(?P<y2>\d{{3,4}})\b"
    rf"|\b(?P<m3>{_MON})\s+(?P<y3>\d{{4}})\b"
    r"|\b(?P<y4>1\d{3}|20\d{2})\b", re.IGNORECASE)
_BORN = re.compile(r"\(\s*(?:n[ée]e\s+[^;,)]*[;,]\s*)?born\s+|\bborn\s+(?:on\s+|in\s+)?|\(\s*(?=[^()]{0,40}[–—-])",
                   re.IGNORECASE)
_STARTED = re.compile(r"\b(?:founded|established|started|created|formed|opened|built|released|published|launched|"
                      r"incorporated|began|begun|premiered|debuted|aired|first\s+\w+|completed|constructed|"
                      r"introduced|issued|written|composed|signed|discovered|invented|since|in)\b", re.IGNORECASE)

# comparative word -> (dimension, direction): direction "max" means the larger value wins
_COMPARATIVES: dict[str, tuple[str, str]] = {
    "older": ("birth", "min"), "younger": ("birth", "max"), "elder": ("birth", "min"),
    "born first": ("birth", "min"), "born earlier": ("birth", "min"), "born later": ("birth", "max"),
    "first": ("date", "min"), "earlier": ("date", "min"), "sooner": ("date", "min"), "later": ("date", "max"),
    "last": ("date", "max"), "more recent": ("date", "max"), "more recently": ("date", "max"),
    "newer": ("date", "max"), "most recent": ("date", "max"),
    "taller": ("length", "max"), "higher": ("length", "max"), "shorter": ("length", "min"),
    "longer": ("length", "max"), "deeper": ("length", "max"),
    "larger": ("size", "max"), "bigger": ("size", "max"), "smaller": ("size", "min"),
    "more populous": ("population", "max"), "less populous": ("population", "min"),
    "more": ("count", "max"), "fewer": ("count", "min"), "less": ("count", "min"),
}
_COMPARATIVE_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _COMPARATIVES), key=len, reverse=True))
                             + r")\b", re.IGNORECASE)
_YES_NO_START = re.compile(r"^(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should)\b",
                           re.IGNORECASE)

# unit -> (dimension, factor to the base unit: metres, square kilometres, people/things)
_UNITS: dict[str, tuple[str, float]] = {
    "km": ("length", 1000.0), "kilometres": ("length", 1000.0), "kilometers": ("length", 1000.0),
    "kilometre": ("length", 1000.0), "kilometer": ("length", 1000.0),
    "mi": ("length", 1609.344), "miles": ("length", 1609.344), "mile": ("length", 1609.344),
    "m": ("length", 1.0), "metres": ("length", 1.0), "meters": ("length", 1.0), "metre": ("length", 1.0),
    "meter": ("length", 1.0), "ft": ("length", 0.3048), "feet": ("length", 0.3048), "foot": ("length", 0.3048),
    "km2": ("area", 1.0), "km²": ("area", 1.0), "square kilometres": ("area", 1.0),
    "square kilometers": ("area", 1.0), "sq mi": ("area", 2.589988), "square miles": ("area", 2.589988),
    "acres": ("area", 0.00404686), "hectares": ("area", 0.01), "ha": ("area", 0.01),
}
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(million|billion|thousand)?\s*"
                     r"(square kilometres|square kilometers|square miles|sq mi|km²|km2|kilometres|kilometers|"
                     r"kilometre|kilometer|km|miles|mile|mi|metres|meters|metre|meter|m|feet|foot|ft|acres|"
                     r"hectares|ha)?\b", re.IGNORECASE)
_SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9}
_WORD_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"only": 1, "single": 1, "sole": 1, "dozen": 12}
_WORD_NUMBER = re.compile(r"\b(" + "|".join(_WORD_NUMBERS) + r")\b", re.IGNORECASE)


@dataclass
class QuestionKind:
    """kind: "comparison" | "yes_no" | "other"; for a comparison: the two entities as the question spells them,
    the dimension ("birth", "date", "length", "size", "population", "count"), the direction ("min" wins or "max"
    wins), the comparative word, `noun` (what is counted: "members") and `yes_no` (asked as "Is A older than B?")."""

    kind: str
    entities: tuple[str, ...] = ()
    dimension: str = ""
    direction: str = ""
    word: str = ""
    noun: str = ""
    yes_no: bool = False


@dataclass
class Value:
    """One entity's value: `key` sorts it (a (year, month, day) tuple or a number in the base unit), `said` is how
    the passage says it, `evidence` the passage."""

    entity: str
    key: tuple | float
    said: str
    evidence: Evidence


@dataclass
class Decision:
    """A comparison decided in code: the winner (as the question spells it) and the values it was decided from."""

    winner: str
    values: list[Value] = field(default_factory=list)
    kind: QuestionKind | None = None

    @property
    def short_answer(self) -> str:
        if self.kind is not None and self.kind.yes_no:
            return "yes" if _same(self.winner, self.kind.entities[0]) else "no"
        return self.winner


def _clean_entity(text: str) -> str:
    text = re.sub(r"^\s*(?:the|a|an|between)\s+", "", text.strip(" ,:;?\"'"), flags=re.IGNORECASE)
    return text.strip(" ,:;?\"'")


def question_kind(question: str) -> QuestionKind:
    """The question's kind and, for a comparison, its parts (see QuestionKind)."""
    q = " ".join(question.split()).rstrip("?. ")
    m = re.match(r"^(?:is|was|are|were)\s+(.+?)\s+(" + _COMPARATIVE_RE.pattern[3:-3] + r")\s+than\s+(.+)$", q,
                 re.IGNORECASE)
    if m:
        dim, direction = _COMPARATIVES[m.group(2).lower()]
        return QuestionKind("comparison", (_clean_entity(m.group(1)), _clean_entity(m.group(3))), dim, direction,
                            m.group(2).lower(), yes_no=True)
    comparison = _comparison(q)
    if comparison is not None:
        return comparison
    if _YES_NO_START.match(q) and " or " not in q:  # "Is A or B the ...?" asks for one of them, not yes/no
        return QuestionKind("yes_no")
    return QuestionKind("other")


def _comparison(q: str) -> QuestionKind | None:
    """ "Who is older, A or B" / "Which magazine was started first A or B" / "Which has more members, A or B"."""
    if " or " not in q or not re.match(r"^(who|which|what|whose)\b", q, re.IGNORECASE):
        return None
    head, b = q.rsplit(" or ", 1)
    words = list(_COMPARATIVE_RE.finditer(head))
    if not words:
        return None
    word = words[0]
    if "," in head[word.end():] or ":" in head[word.end():]:
        a = re.split(r"[,:]", head[word.end():])[-1]
    else:
        a = head[word.end():]
    noun = ""
    rest = head[word.end():].split(",")[0].split()
    if rest and word.group(1).lower() in ("more", "fewer", "less"):
        noun = rest[0].lower()
        if "," not in head[word.end():]:
            a = " ".join(rest[1:])
    a, b = _clean_entity(a), _clean_entity(b)
    if not a or not b:
        return None
    w = word.group(1).lower()
    dim, direction = _COMPARATIVES[w]
    if dim == "date" and re.search(r"\bborn\b", head, re.IGNORECASE):
        dim = "birth"
    if dim == "birth" and not re.search(r"^who\b|\bborn\b|\bperson\b", head, re.IGNORECASE):
        dim = "date"  # "which is older, Harvard or Yale": founding dates
    return QuestionKind("comparison", (a, b), dim, direction, w, noun)


def _same(a: str, b: str) -> bool:
    return _norm(a) == _norm(b)


def _norm(text: str) -> str:
    text = fold(text).lower()
    text = re.sub(r"\s*\(.*?\)\s*$", "", text)
    return " ".join(re.findall(r"[a-z0-9]+", text))


def passages_about(entity: str, evidence: list[Evidence]) -> list[Evidence]:
    """Passages of the entity's own page first (title = the entity), then passages that name it."""
    name = _norm(entity)
    own = [e for e in evidence if _norm(e.title) == name]
    near = [e for e in evidence if e not in own and name and (name in _norm(e.title) or _norm(e.title) in name)
            and _norm(e.title)]
    naming = [e for e in evidence if e not in own and e not in near and name in _norm(e.text)]
    return own + near + naming


def parse_date(m: re.Match) -> tuple[tuple[int, int, int], str]:
    """((year, month, day), the text) of a _DATE match; a missing month or day is 0 (sorts first)."""
    g = m.groupdict()
    year = int(g["y1"] or g["y2"] or g["y3"] or g["y4"])
    mon = g["m1"] or g["m2"] or g["m3"]
    month = next((i + 1 for i, name in enumerate(MONTHS) if mon and name.startswith(mon.lower().rstrip(".")[:3])), 0)
    day = int(g["d1"] or g["d2"] or 0)
    return (year, month, day), m.group(0)


def born_date(text: str) -> tuple[tuple[int, int, int], str] | None:
    """The born date a passage states: "(born 8 October 1970)", "born on ...", or a life span "(1901 – 1966)"."""
    for b in _BORN.finditer(text):
        d = _DATE.search(text, b.end(), b.end() + 60)
        if d and d.start() - b.end() <= 30:
            return parse_date(d)
    return None


def start_date(text: str, name: str) -> tuple[tuple[int, int, int], str] | None:
    """When the thing began: the first date after a word like founded/released/established, else the first date of
    a passage that names it ("Arthur's Magazine (1844–1846) was ..."), else none."""
    for m in _DATE.finditer(text):
        before = text[max(0, m.start() - 40):m.start()]
        if _STARTED.search(before) or re.search(r"\(\s*$|\bis an?\s+$|^\s*$", before):
            return parse_date(m)
    first = _DATE.search(text)
    return parse_date(first) if first and _norm(name) in _norm(text[:first.start()] + " " + name) else None


def numbers(text: str) -> list[tuple[str, float, str, int]]:
    """(dimension, value in the base unit, the text, where) for every number in the passage; a number without a
    unit has the dimension "count"."""
    out = []
    for m in _NUMBER.finditer(text):
        raw, scale, unit = m.group(1), m.group(2), (m.group(3) or "").lower()
        if not unit and _DATE.fullmatch(raw) and len(raw) == 4 and not scale:
            continue  # a year, not a quantity
        value = float(raw.replace(",", "")) * _SCALE.get((scale or "").lower(), 1.0)
        dim, factor = _UNITS.get(unit, ("count", 1.0))
        out.append((dim, value * factor, m.group(0).strip(), m.start()))
    for m in _WORD_NUMBER.finditer(text):  # "seven species", "the only species": counts in words
        out.append(("count", float(_WORD_NUMBERS[m.group(1).lower()]), m.group(0), m.start()))
    return sorted(out, key=lambda n: n[3])


def _number_value(kind: QuestionKind, text: str) -> tuple[float, str] | None:
    found = numbers(text)
    if kind.dimension == "length":
        cands = [n for n in found if n[0] == "length"]
    elif kind.dimension == "size":
        cands = [n for n in found if n[0] == "area"] or [n for n in found if n[0] == "length"] or [
            n for n in found if n[0] == "count" and re.search(r"population|inhabitants|people|residents",
                                                              text[n[3]:n[3] + 60] + text[max(0, n[3] - 40):n[3]],
                                                              re.IGNORECASE)]
    elif kind.dimension == "population":
        cands = [n for n in found if n[0] == "count" and re.search(
            r"population|inhabitants|people|residents", text[max(0, n[3] - 40):n[3] + 60], re.IGNORECASE)]
    else:  # a count of kind.noun ("more members"): the number just before the noun
        stem = kind.noun.rstrip("s")[:6]
        cands = [n for n in found if n[0] == "count" and stem
                 and re.match(r"\s*(?:\w+\s+){0,2}" + re.escape(stem), text[n[3] + len(n[2]):], re.IGNORECASE)]
    if not cands:
        return None
    return cands[0][1], cands[0][2]


def value_of(entity: str, kind: QuestionKind, evidence: list[Evidence]) -> Value | None:
    """The entity's value for the comparison, from the first passage about it that states one."""
    for e in passages_about(entity, evidence):
        own = _norm(e.title) == _norm(entity) or _norm(entity) in _norm(e.title)
        text = e.text if own else _around(e.text, entity)
        if kind.dimension == "birth":
            found = born_date(text) if own or _norm(entity) in _norm(text) else None
            if found:
                return Value(entity, found[0], found[1], e)
        elif kind.dimension == "date":
            found = born_date(text) if re.search(r"\bborn\b", text[:200]) else None
            found = found or start_date(text, entity if own else "")
            if found:
                return Value(entity, found[0], found[1], e)
        else:
            num = _number_value(kind, text)
            if num:
                return Value(entity, num[0], num[1], e)
    return None


def _around(text: str, entity: str) -> str:
    """The sentence of a passage that names the entity (a value elsewhere in it may belong to something else)."""
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if _norm(entity) in _norm(sentence):
            return sentence
    return ""


def decide(question: str, evidence: list[Evidence]) -> Decision | None:
    """The comparison decided from the values the evidence states; None when the question is not a comparison,
    a value is missing, or the values tie."""
    kind = question_kind(question)
    if kind.kind != "comparison" or len(kind.entities) != 2:
        return None
    values = [value_of(ent, kind, evidence) for ent in kind.entities]
    if any(v is None for v in values):
        return None
    a, b = values
    if a.key == b.key or (isinstance(a.key, tuple) and not _comparable(a.key, b.key)):
        return None
    pick = min if kind.direction == "min" else max
    winner = pick(values, key=lambda v: v.key)
    return Decision(winner.entity, values, kind)


def _comparable(a: tuple, b: tuple) -> bool:
    """Dates with the same year compare only when both give the month (and the day, when the months match)."""
    if a[0] != b[0]:
        return True
    if not a[1] or not b[1]:
        return False
    return a[1] != b[1] or bool(a[2] and b[2])


def explain(decision: Decision, number_of) -> str:
    """The explanation sentence: the values with their citations, then the decision, saying it was computed.
    `number_of(evidence)` gives a passage's citation number."""
    kind = decision.kind
    verb = {"birth": "was born", "date": "dates from"}.get(kind.dimension, "has")
    parts = [f"{v.entity} {verb} {v.said} [{number_of(v.evidence)}]" for v in decision.values]
    word = kind.word if kind.word not in ("first", "earlier", "born first", "born earlier") else "earlier"
    if kind.dimension in ("count", "population", "size", "length"):
        word = {"max": "larger" if kind.word == "more" else kind.word}.get(kind.direction, kind.word)
    lead = f"{decision.winner} is {word}" if kind.dimension != "birth" or word != "earlier" else \
        f"{decision.winner} was born earlier"
    if kind.yes_no:
        lead = ("Yes" if decision.short_answer == "yes" else "No") + f": {lead}"
    return f"{lead}. " + "; ".join(parts) + " (compared from the values the sources state)."
