"""One error base for every package and one function that words an error for the user."""

import pytest

from moesearch_core.errors import UserError, render_error


@pytest.mark.parametrize("spec", ["agent.errors:AgentError", "retrieval.errors:RetrievalError",
                                  "model_runtime.errors:ModelRuntimeError", "eval.errors:EvalError",
                                  "ui.errors:UIError"])
def test_every_package_error_is_a_user_error(spec):
    import importlib

    module, name = spec.split(":")
    assert issubclass(getattr(importlib.import_module(module), name), UserError)


def test_a_user_error_shows_its_first_line_and_exit_code():
    from retrieval.errors import SearchUnavailableError

    shown = render_error(SearchUnavailableError("SearXNG at http://127.0.0.1:9 is unreachable; start it\ndetails"))
    assert (shown.message, shown.exit_code, shown.user_error) == (
        "SearXNG at http://127.0.0.1:9 is unreachable; start it", 3, True)
    assert render_error(UserError("", exit_code=4)) == render_error(UserError(exit_code=4))
    assert render_error(UserError(exit_code=4)).message == "UserError"


def test_a_bug_is_an_internal_error_with_where_to_look():
    shown = render_error(KeyError("sub_questions"), where="see the log")
    assert shown.message == "internal error (KeyError: 'sub_questions'); see the log"
    assert shown.exit_code == 1 and not shown.user_error
