"""The `LLM` interface every backend implements, and the helpers they share.

Backends: `llamacpp` (GGUF in process), `openai` (any OpenAI-compatible server), `torch` (our MoE engine).
"""

from __future__ import annotations

import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from model_runtime.errors import ContextOverflowError, ModelOutputError
from model_runtime.partial_json import close_brackets


@dataclass
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


Messages = str | Sequence[Message | dict]


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" | "length"
    elapsed_s: float = 0.0
    reasoning: str | None = None  # text a reasoning model wrote inside <think>...</think>, kept out of `text`
    data: Any = None  # the parsed JSON value when a json_schema was given


def to_messages(messages: Messages) -> list[Message]:
    if isinstance(messages, str):
        return [Message("user", messages)]
    out = []
    for m in messages:
        out.append(m if isinstance(m, Message) else Message(str(m["role"]), str(m["content"])))
    return out


def render_plain_prompt(messages: Messages) -> str:
    """Completion-style prompt for base models without a chat template.

    A single user string is used as is (scripts pass raw prompts); a conversation becomes a transcript that ends
    with an open assistant turn, which base models continue naturally.
    """
    if isinstance(messages, str):
        return messages
    msgs = to_messages(messages)
    if len(msgs) == 1 and msgs[0].role == "user":
        return msgs[0].content
    parts = []
    for m in msgs:
        if m.role == "system":
            parts.append(m.content.strip() + "\n")
        elif m.role == "user":
            parts.append(f"User: {m.content.strip()}\n")
        else:
            parts.append(f"Assistant: {m.content.strip()}\n")
    return "".join(parts) + "Assistant:"


# The tags reasoning models wrap their thinking in. Some chat templates write the opening tag into the prompt, so the
# output has a closing tag and no opening one: everything before the last closing tag is reasoning.
_OPEN_THINK = re.compile(r"<(think|thinking|reasoning|thought)>", re.I)
_CLOSE_THINK = re.compile(r"</(think|thinking|reasoning|thought)>", re.I)


def split_reasoning(text: str) -> tuple[str, str | None]:
    """(answer, reasoning) of a model's output: everything up to the last closing ``</think>`` (or ``</thinking>``,
    ``</reasoning>``, ``</thought>``) is reasoning, with or without its opening tag; an opening tag with no closing
    one starts reasoning that runs to the end (unfinished). Reasoning is None when the output has no such tag.
    Linear in ``len(text)``."""
    last_close = None
    for last_close in _CLOSE_THINK.finditer(text):
        pass
    answer, reasoning = (text[last_close.end():], text[:last_close.start()]) if last_close else (text, None)
    opened = _OPEN_THINK.search(answer)
    if opened:  # reasoning (re)started after the last closing tag and was cut off
        reasoning = (reasoning or "") + "\n" + answer[opened.end():]
        answer = answer[:opened.start()]
    if reasoning is None:
        return text, None
    reasoning = _CLOSE_THINK.sub("\n", _OPEN_THINK.sub("\n", reasoning))
    return answer.strip(), re.sub(r"\n{3,}", "\n\n", reasoning).strip()


def parse_json_output(text: str, schema: dict) -> Any:
    """Parse model output as JSON that matches `schema`, repairing the usual damage (prose around it, truncation)."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    body = text[min(starts):].strip() if starts else text.strip()
    errors = []
    for candidate in (body, close_brackets(body)):
        try:
            # raw_decode ignores prose after the JSON value; strict=False accepts the raw newlines and tabs inside
            # strings that grammar-constrained small models write
            value, _ = json.JSONDecoder(strict=False).raw_decode(candidate)
        except json.JSONDecodeError as e:
            errors.append(str(e))
            continue
        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as e:
            errors.append(e.message)
            continue
        return value
    raise ModelOutputError(
        f"the model's output is not JSON matching the schema ({errors[-1] if errors else 'empty'}); "
        "try a larger max_tokens or a stronger model"
    )


def apply_stops(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    """Cut `text` at the first stop sequence; return (text, stopped)."""
    if not stop:
        return text, False
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class CompletionStream:
    """Iterates over text pieces as they are generated; `.completion` holds the totals once exhausted."""

    def __init__(self, pieces: Iterator[str], finish: callable):
        self._pieces = pieces
        self._finish = finish  # called with the full text once iteration ends -> Completion
        self._text: list[str] = []
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        for piece in self._pieces:
            self._text.append(piece)
            yield piece
        self.completion = self._finish("".join(self._text))


class LLM(ABC):
    """A text generator. Implementations must be safe to call from several threads (they may serialise)."""

    name: str = "llm"
    backend: str = "?"

    @property
    @abstractmethod
    def context_window(self) -> int: ...

    @abstractmethod
    def count_tokens(self, text: str) -> int: ...

    @abstractmethod
    def generate(
        self,
        messages: Messages,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        json_schema: dict | None = None,
    ) -> Completion: ...

    @abstractmethod
    def stream(
        self,
        messages: Messages,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> CompletionStream: ...

    def close(self) -> None:
        """Release the model's memory or connections."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # shared by backends
    def _check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        if prompt_tokens + 1 > self.context_window:
            raise ContextOverflowError(
                f"the prompt has {prompt_tokens} tokens but the model's context window is {self.context_window}; "
                "shorten the prompt or raise the context size (MOESEARCH_N_CTX / --n-ctx)"
            )

    @staticmethod
    def _finish(text: str, *, prompt_tokens: int, completion_tokens: int, finish_reason: str, started: float,
                json_schema: dict | None = None) -> Completion:
        answer, reasoning = split_reasoning(text)
        data = parse_json_output(answer, json_schema) if json_schema is not None else None
        return Completion(answer, prompt_tokens, completion_tokens, finish_reason, time.perf_counter() - started,
                          reasoning, data)


__all__ = ["LLM", "Message", "Messages", "Completion", "CompletionStream", "to_messages", "render_plain_prompt",
           "split_reasoning", "parse_json_output", "apply_stops"]
