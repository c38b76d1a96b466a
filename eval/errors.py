"""Errors a user can cause in the evaluator, each with a one-line message that says what to do.

Every class here is a `moesearch_core.errors.UserError` (a one-line message and an exit code: 2 bad input,
3 something unavailable, 4 deadline); the CLI, the UI and the evaluator show it through `render_error`.
"""

from moesearch_core.errors import UserError


class EvalError(UserError):
    exit_code = 2


class DatasetNotFoundError(EvalError):
    pass


class MalformedDatasetError(EvalError):
    """A dataset line could not be parsed and the user asked to stop on bad lines."""

    def __init__(self, message: str, *, path: str = "", line: int = 0):
        super().__init__(message)
        self.path = path
        self.line = line


class RunNotFoundError(EvalError):
    pass


class RunConfigError(EvalError):
    """Options that contradict each other or the run being resumed."""


class SnapshotError(EvalError):
    pass


class TooManyErrorsError(EvalError):
    """Questions keep failing in a row: something is down (model, search engine); the run can be resumed."""

    exit_code = 3
