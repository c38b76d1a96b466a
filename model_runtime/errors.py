"""Errors a user can cause in the model runtime, each with a message that says what to do.

Every class here is a `moesearch_core.errors.UserError` (a one-line message and an exit code: 2 bad input,
3 something unavailable, 4 deadline); the CLI, the UI and the evaluator show it through `render_error`.
"""

from moesearch_core.errors import UserError


class ModelRuntimeError(UserError):
    exit_code = 2


class ModelNotFoundError(ModelRuntimeError):
    exit_code = 3


class CorruptModelError(ModelRuntimeError):
    exit_code = 3


class UnknownModelError(ModelRuntimeError):
    pass


class OfflineError(ModelRuntimeError):
    exit_code = 3


class ContextOverflowError(ModelRuntimeError):
    pass


class ServerUnreachableError(ModelRuntimeError):
    exit_code = 3


class ServerResponseError(ModelRuntimeError):
    exit_code = 3


class InvalidSettingsError(ModelRuntimeError):
    pass


class ModelOutputError(ModelRuntimeError):
    """The model's output could not be parsed into what was asked for (e.g. JSON matching a schema)."""


class UnsupportedModelError(ModelRuntimeError):
    """The torch engine cannot run this file (architecture or tensor type); the message names what it supports."""
