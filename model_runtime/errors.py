"""Errors a user can cause in the model runtime, each with a message that says what to do.

Convention shared by every moesearch package: a user-facing error class sets ``user_facing = True`` and an
``exit_code``; the CLI and the UI print ``str(error)`` (one line) instead of a traceback.
"""


class ModelRuntimeError(Exception):
    user_facing = True
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
