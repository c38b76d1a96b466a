"""Errors a user can cause while asking a question. Each message is one line that says what to do.

Convention shared by every moesearch package: ``user_facing = True`` and an ``exit_code`` (2 bad input, 3 something
unavailable, 4 deadline); the CLI prints ``error: <message>`` and exits with the code.
"""

from __future__ import annotations


class AgentError(Exception):
    user_facing = True
    exit_code = 2


class EmptyQuestionError(AgentError):
    """The question is empty or only whitespace."""

    def __init__(self, message: str = "the question is empty; ask something, e.g. moesearch ask \"Who wrote Dune?\""):
        super().__init__(message)


class BadRequestError(AgentError):
    """An argument the caller gave cannot be used (unknown mode, a run id that does not exist, a bad plan)."""


class SearchUnavailableError(AgentError):
    """The search engine could not be reached or answered with an error."""

    exit_code = 3


class ModelUnavailableError(AgentError):
    """The model could not be loaded or its server could not be reached."""

    exit_code = 3


class DeadlineError(AgentError):
    """The wall-clock deadline passed before anything could be answered."""

    exit_code = 4


def as_user_error(exc: BaseException) -> tuple[str, int] | None:
    """(message, exit_code) for an exception a user can act on (ours or another package's), else None."""
    if getattr(exc, "user_facing", False):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__, int(getattr(exc, "exit_code", 2))
    return None
