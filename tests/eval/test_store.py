"""The eval tables in a real SQLite file: one row per question, never two."""

from __future__ import annotations

import pytest

from eval.errors import RunNotFoundError
from eval.store import EvalResult, EvalRun, Store, dumps


def test_rows_are_unique_per_question_and_mode(eval_env, tmp_path):
    store = Store(tmp_path / "x.db")
    run = store.create_run(EvalRun(id=Store.new_run_id(), dataset="d", modes=dumps(["quick", "deep"])))
    assert store.add_result(EvalResult(run_id=run.id, mode="quick", question_id="q1", f1=0.5))
    assert not store.add_result(EvalResult(run_id=run.id, mode="quick", question_id="q1", f1=0.9))
    assert store.add_result(EvalResult(run_id=run.id, mode="deep", question_id="q1"))
    assert store.done_keys(run.id) == {("quick", "q1"), ("deep", "q1")}
    assert [r.f1 for r in store.results(run.id, "quick")] == [0.5]
    assert store.get_run(run.id[:-2]).id == run.id  # a unique prefix names the run
    with pytest.raises(RunNotFoundError):
        store.get_run("nope")
    store.update_run(run.id, status="done")
    assert store.list_runs()[0].status == "done"
    store.delete_run(run.id)
    assert store.list_runs() == []


def test_default_database_is_moesearch_db(eval_env):
    from eval.settings import EvalSettings

    s = EvalSettings()
    assert str(s.db) == eval_env["MOESEARCH_DB"]
    assert Store().db == s.db
