"""Errors a user can cause while asking a question. Each message is one line that says what to do.

Every class here is a `moesearch_core.errors.UserError` (a one-line message and an exit code: 2 bad input,
3 something unavailable, 4 deadline); the CLI, the UI and the evaluator show it through `render_error`.
"""

from __future__ import annotations

from moesearch_core.errors import UserError


class AgentError(UserError):
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
