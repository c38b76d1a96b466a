"""Errors a user can cause in the web app. Each message is one line that says what to do.

Every class here is a `moesearch_core.errors.UserError` (a one-line message and an exit code: 2 bad input,
3 something unavailable, 4 deadline); the CLI, the UI and the evaluator show it through `render_error`.
"""

from __future__ import annotations

from moesearch_core.errors import UserError


class UIError(UserError):
    exit_code = 2


class PortInUseError(UIError):
    """The port `moesearch ui` should listen on is taken."""

    exit_code = 3


class ConversationNotFoundError(UIError):
    """A conversation id that is not (or no longer) in the database."""


class ReadError(UIError):
    """A URL or an uploaded file could not be read into a document."""
