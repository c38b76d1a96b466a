"""Errors a user can cause in the evaluator, each with a one-line message that says what to do.

Same convention as every moesearch package: ``user_facing = True`` and an ``exit_code`` (2 bad input,
3 something unavailable, 4 deadline); the CLI prints ``error: <message>`` and exits with the code.
"""


class EvalError(Exception):
    user_facing = True
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
