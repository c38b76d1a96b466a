"""QA datasets: a JSONL loader with line-numbered error reports, and a registry of named sets.

One example per line: ``{"id", "question", "answers": [...], "context"?: [[title, [sentences]], ...],
"supporting_titles"?: [...]}``. ``answer`` (a string) is accepted in place of ``answers``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from eval.errors import DatasetNotFoundError, MalformedDatasetError, RunConfigError

DATA_DIR = Path(__file__).resolve().parent / "data"

OnBadLine = Literal["skip", "stop"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    path: Path
    description: str
    licence: str


# Named sets shipped inside the project (the files live in eval/data/, attribution in eval/data/ATTRIBUTION.md).
REGISTRY: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo("hotpotqa-dev", DATA_DIR / "hotpotqa-dev.jsonl",
                    "300 HotpotQA dev questions (distractor setting), 10 context paragraphs each, gold titles",
                    "CC BY-SA 4.0 (HotpotQA, Yang et al. 2018)"),
    ]
}


@dataclass
class Example:
    id: str
    question: str
    answers: list[str]
    context: list[tuple[str, list[str]]] = field(default_factory=list)  # (title, sentences)
    supporting_titles: list[str] = field(default_factory=list)
    line: int = 0  # 1-based line in the source file


@dataclass
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Dataset:
    name: str
    path: Path
    examples: list[Example]
    problems: list[Problem] = field(default_factory=list)  # malformed lines that were skipped
    sha256: str = ""

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    @property
    def has_context(self) -> bool:
        return any(ex.context for ex in self.examples)

    def head(self, limit: int | None) -> list[Example]:
        return self.examples if limit is None else self.examples[: max(0, limit)]

    def paragraphs(self) -> list[tuple[str, str]]:
        """Every context paragraph as (title, text), first occurrence of each title kept, in file order."""
        seen: dict[str, str] = {}
        for ex in self.examples:
            for title, sentences in ex.context:
                if title not in seen:
                    seen[title] = join_sentences(sentences)
        return list(seen.items())


def join_sentences(sentences: list[str]) -> str:
    return " ".join(s.strip() for s in sentences if s and s.strip())


def resolve(name_or_path: str | Path) -> tuple[str, Path]:
    """A registered name or a path to a JSONL file -> (display name, path)."""
    key = str(name_or_path)
    if key in REGISTRY:
        return key, REGISTRY[key].path
    p = Path(key).expanduser()
    if p.is_file():
        return str(p), p.resolve()
    known = ", ".join(sorted(REGISTRY))
    raise DatasetNotFoundError(f"no dataset named or at {key!r}; use one of [{known}] or a path to a JSONL file")


def parse_example(obj: object, line: int) -> Example:
    """Validate one decoded JSON line; raise ValueError with a precise reason."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    qid = obj.get("id", obj.get("_id"))
    if qid is None or (isinstance(qid, str) and not qid.strip()):
        raise ValueError("missing 'id'")
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("missing or empty 'question'")
    answers = obj.get("answers", obj.get("answer"))
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise ValueError("'answers' must be a non-empty list of strings")
    context_raw = obj.get("context") or []
    context: list[tuple[str, list[str]]] = []
    if not isinstance(context_raw, list):
        raise ValueError("'context' must be a list of [title, [sentences]]")
    for i, para in enumerate(context_raw):
        if (not isinstance(para, (list, tuple)) or len(para) != 2 or not isinstance(para[0], str)
                or not isinstance(para[1], (list, str))):
            raise ValueError(f"'context'[{i}] must be [title, [sentences]]")
        sentences = [para[1]] if isinstance(para[1], str) else para[1]
        if not all(isinstance(s, str) for s in sentences):
            raise ValueError(f"'context'[{i}] sentences must be strings")
        context.append((para[0], list(sentences)))
    sup = obj.get("supporting_titles")
    if sup is None and isinstance(obj.get("supporting_facts"), list):  # the original HotpotQA format
        sup = [f[0] for f in obj["supporting_facts"] if isinstance(f, (list, tuple)) and f]
    sup = sup or []
    if not isinstance(sup, list) or not all(isinstance(t, str) for t in sup):
        raise ValueError("'supporting_titles' must be a list of strings")
    return Example(str(qid), question.strip(), list(answers), context, list(dict.fromkeys(sup)), line)


def load_dataset(name_or_path: str | Path, *, on_bad_line: OnBadLine = "skip") -> Dataset:
    """Load a named set or a JSONL file.

    A malformed line (bad JSON, missing fields, duplicate id) is reported with its 1-based line number: with
    ``on_bad_line="skip"`` it is left out and listed in ``Dataset.problems``; with ``"stop"`` it raises
    `MalformedDatasetError`. Blank lines are ignored.
    """
    if on_bad_line not in ("skip", "stop"):
        raise RunConfigError(f"--on-bad-line must be 'skip' or 'stop', not {on_bad_line!r}")
    name, path = resolve(name_or_path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DatasetNotFoundError(f"cannot read dataset {path}: {e.strerror}; check the path") from e
    examples: list[Example] = []
    problems: list[Problem] = []
    ids: set[str] = set()
    for lineno, line_bytes in enumerate(raw.splitlines(), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as e:
            reason = f"not UTF-8 ({e.reason} at byte {e.start})"
        else:
            if not line.strip():
                continue
            try:
                ex = parse_example(json.loads(line), lineno)
            except json.JSONDecodeError as e:
                reason = f"invalid JSON ({e.msg} at column {e.colno})"
            except RecursionError:
                reason = "JSON nested too deeply; a line is one flat object with id, question and answers"
            except ValueError as e:
                reason = str(e)
            else:
                if ex.id in ids:
                    reason = f"duplicate id {ex.id!r}"
                else:
                    ids.add(ex.id)
                    examples.append(ex)
                    continue
        if on_bad_line == "stop":
            raise MalformedDatasetError(
                f"{path}: line {lineno}: {reason}; fix the line or run with --on-bad-line skip",
                path=str(path), line=lineno)
        problems.append(Problem(lineno, reason))
    if not examples:
        raise MalformedDatasetError(f"{path} holds no valid examples" + (f" ({problems[0]})" if problems else ""),
                                    path=str(path), line=problems[0].line if problems else 0)
    return Dataset(name, path, examples, problems, hashlib.sha256(raw).hexdigest())


def list_datasets() -> list[DatasetInfo]:
    return list(REGISTRY.values())
