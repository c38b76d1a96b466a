"""Sub-questions: the plan the model writes, checked and repaired so that a weak model's plan cannot hurt.

A plan is a small DAG: each sub-question may depend on earlier ones and refer to their answers as {q1}. The
question itself is always searched too (as q0): it costs one search and protects against a plan that misses the point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.text import key_terms

_REF = re.compile(r"\{(q\d)\}")


@dataclass
class SubQuestion:
    id: str
    question: str
    depends_on: list[str] = field(default_factory=list)
    round: int = 1
    status: str = "pending"  # pending | done
    note: str = ""  # the short answer found for it (used by the sub-questions that depend on it)

    @property
    def number(self) -> int:
        """N of the id "qN" (ids are "q0" for the question itself, then q1, q2, ... in the order they are made)."""
        return int(self.id[1:])

    def summary(self) -> dict:
        """{id, question, depends_on}: what the plan event and SearchAgent.plan show."""
        return {"id": self.id, "question": self.question, "depends_on": list(self.depends_on)}

    def to_dict(self) -> dict:
        return {"id": self.id, "question": self.question, "depends_on": list(self.depends_on), "round": self.round,
                "status": self.status, "note": self.note}


def question_itself(question: str) -> SubQuestion:
    return SubQuestion("q0", question)


def clean_plan(raw: object, question: str, max_sub_questions: int) -> tuple[list[SubQuestion], list[str]]:
    """Sub-questions from the model's JSON (anything at all), plus what was repaired.

    Dropped: non-text entries, duplicates, sub-questions sharing no key term with the question (unless they use an
    earlier answer), dependencies on unknown or later ids (which also rules out cycles). q0 (the question) comes first.
    """
    problems: list[str] = []
    items = raw.get("sub_questions") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        items, problems = [], ["the plan was not a list of sub-questions"]
    q_terms = key_terms(question)
    out = [question_itself(question)]
    seen = {" ".join(sorted(q_terms))}
    for i, item in enumerate(items[:max_sub_questions]):
        if isinstance(item, str):
            item = {"question": item}
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            problems.append(f"sub-question {i + 1} is not text")
            continue
        # a small model's string may run on past a newline into more prompt-like text: keep the first line
        text = " ".join(item["question"].strip().split("\n")[0].split())
        known = {s.id for s in out}
        sid = item.get("id") if isinstance(item.get("id"), str) and re.fullmatch(r"q[1-9]", item.get("id", "")) \
            and item["id"] not in known else _unused_id(known, len(out))
        deps = [d for d in item.get("depends_on") or [] if isinstance(d, str) and d in known and d != "q0"]
        deps += [d for d in _REF.findall(text) if d in known and d not in deps]
        text = _REF.sub(lambda m: m.group(0) if m.group(1) in known else "", text).strip()
        terms = key_terms(_REF.sub(" ", text))
        signature = " ".join(sorted(terms))
        if len(text) < 3 or not terms or signature in seen:
            problems.append(f"sub-question {text!r} is empty or repeats another")
            continue
        if not deps and not terms & q_terms:
            problems.append(f"sub-question {text!r} has nothing to do with the question")
            continue
        seen.add(signature)
        out.append(SubQuestion(sid, text, deps))
    return out, problems


def _unused_id(known: set[str], start: int) -> str:
    """The first "qN" from N=start that no sub-question has yet (the model may have taken q2 before we reach it)."""
    n = start
    while f"q{n}" in known:
        n += 1
    return f"q{n}"


def resolve(sub: SubQuestion, done: dict[str, SubQuestion]) -> str:
    """The search query for a sub-question: {qN} replaced by that sub-question's short answer."""
    def short(d: str) -> str:
        return new_words(done[d].note, done[d].question)

    text = _REF.sub(lambda m: short(m.group(1)) if m.group(1) in done else "", sub.question)
    extra = [short(d) for d in sub.depends_on if d in done and f"{{{d}}}" not in sub.question]
    return " ".join(" ".join([text, *extra]).split())


def new_words(note: str, asked: str, limit: int = 6) -> str:
    """What a note adds to what was asked: its content words (as written) that the question did not contain.

    "The woman who portrayed Corliss Archer is Shirley Temple [2]" for "Who portrayed Corliss Archer?" gives
    "Shirley Temple": the bridge entity a multi-hop question needs next. '' for unknown or nothing new."""
    from agent.text import STOPWORDS, fold, stem

    first = re.split(r"\[\d|\n", note, maxsplit=1)[0]
    if first.strip(" .").lower() in {"", "unknown", "none", "n/a"}:
        return ""
    known = key_terms(asked)
    out = []
    for w in re.findall(r"[^\W_]+(?:['’][^\W_]+)*", first):
        f = fold(w)
        if f in STOPWORDS or stem(f) in known or (len(f) < 3 and not f.isdigit()) or w in out:
            continue
        out.append(w)
    return " ".join(out[:limit])


def ready(subs: list[SubQuestion]) -> list[SubQuestion]:
    """Pending sub-questions whose dependencies are all done."""
    done = {s.id for s in subs if s.status == "done"}
    return [s for s in subs if s.status == "pending" and all(d in done for d in s.depends_on)]
