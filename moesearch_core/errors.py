"""The one base class for errors a user can cause, and the one function that turns any exception into what a user sees.

Every package's own error base (`AgentError`, `RetrievalError`, `ModelRuntimeError`, `EvalError`, `UIError`)
subclasses `UserError`. Its message is one line that says what to do; its exit code is what the CLI exits with:
2 bad input, 3 something unavailable (model, search engine, index, network), 4 a deadline passed.
The CLI, the UI, the model server and the evaluator all show errors through `render_error`.
"""

from __future__ import annotations

from dataclasses import dataclass

BAD_INPUT, UNAVAILABLE, DEADLINE, INTERNAL = 2, 3, 4, 1


class UserError(Exception):
    """An error the user can act on; `str(error)` is the message, `exit_code` the process exit status."""

    exit_code: int = BAD_INPUT
    user_facing = True  # kept for callers written before this class existed

    def __init__(self, message: str = "", *args: object, exit_code: int | None = None):
        super().__init__(message, *args)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        """The first line of the message (a user never sees a multi-line dump), or the class name if empty."""
        lines = str(self).strip().splitlines()
        return lines[0] if lines else type(self).__name__


@dataclass(frozen=True)
class RenderedError:
    """What to show for an exception: one line, the exit code, and whether the user can act on it."""

    message: str
    exit_code: int
    user_error: bool


def render_error(exc: BaseException, *, where: str = "") -> RenderedError:
    """The one line a user sees for `exc`.

    A `UserError` shows its own message and exit code. Anything else is a bug of ours: "internal error (Type:
    first line)", exit code 1, plus `where` (e.g. "the details are in the terminal running moesearch ui") when given;
    callers log or re-raise the traceback for those (`user_error` is False).
    """
    if isinstance(exc, UserError):
        return RenderedError(exc.message, int(exc.exit_code), True)
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    detail = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return RenderedError(f"internal error ({detail})" + (f"; {where}" if where else ""), INTERNAL, False)
