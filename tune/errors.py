"""Errors a user of `moesearch tune` can cause; each message is one line that says what to do."""

from __future__ import annotations

from model_runtime.errors import ModelRuntimeError


class TuneError(ModelRuntimeError):
    """A tune step cannot run (missing input, a recipe for another parent, an interrupted run, ...)."""

    exit_code = 2
