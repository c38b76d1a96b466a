"""Errors a user can cause in the web app. Each message is one line that says what to do.

Convention shared by every moesearch package: ``user_facing = True`` and an ``exit_code`` (2 bad input, 3 something
unavailable, 4 deadline); the CLI prints ``error: <message>`` and exits with the code.
"""

from __future__ import annotations


class UIError(Exception):
    user_facing = True
    exit_code = 2


class PortInUseError(UIError):
    """The port `moesearch ui` should listen on is taken."""

    exit_code = 3


class ConversationNotFoundError(UIError):
    """A conversation id that is not (or no longer) in the database."""


class ReadError(UIError):
    """A URL or an uploaded file could not be read into a document."""
