"""Scoring an Answer into a result row, aggregation, and the report files (Markdown + PNG plots) from SQLite."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict

import pytest

from agent.types import Answer, Citation, Step
from eval import datasets as D
from eval.evidence import title_url
from eval.report import make_report
from eval.scoring import aggregate, score_answer
from eval.store import EvalResult, EvalRun, Store, dumps

from .conftest import PY, ROOT, write_subset

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def example(tmp_path):
    return D.load_dataset(write_subset(tmp_path / "one.jsonl", 1)).examples[0]


def _answer(example, text, cited_title, quote, fetched_titles, mode="quick"):
    return Answer(
        question=example.question, text=text, mode=mode,
        citations=[Citation(1, title_url(cited_title, "http://127.0.0.1:5555"), cited_title, quote)],
        trace=[Step("search", "s", 0.5, 0, 0), Step("fetch", "f", 0.25), Step("answer", "a", 2.0, 900, 40)],
        fetched_urls=[title_url(t, "http://127.0.0.1:5555") for t in fetched_titles],
        sources=[{"url": title_url(t, "http://127.0.0.1:5555"), "title": t + " - Local Web", "published": None}
                 for t in fetched_titles],
        elapsed_s=3.0)


def test_score_answer_hand_checked(example):
    # "What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?"
    assert example.answers == ["Chief of Protocol"]
    gold = example.supporting_titles  # ["Kiss and Tell (1945 film)", "Shirley Temple"]
    paragraphs = dict((t, " ".join(s)) for t, s in example.context)
    quote = "she was named United States ambassador to Ghana and to Czechoslovakia and also served as Chief of " \
            "Protocol of the United States."
    assert quote in paragraphs["Shirley Temple"]
    ans = _answer(example, "Shirley Temple served as Chief of Protocol of the United States [1].", "Shirley Temple",
                  quote, ["Shirley Temple", "Meet Corliss Archer"])
    row = score_answer(example, ans, "quick", page_texts=paragraphs)
    assert row["em"] == 0.0 and row["acc"] == 1.0
    # 10 normalised predicted tokens, 3 shared with the 3 gold tokens: P 0.3, R 1, F1 = 0.6 / 1.3
    assert row["f1"] == pytest.approx(0.6 / 1.3)
    assert row["recall_fetched"] == 0.5 and row["recall_cited"] == 0.5  # Shirley Temple of the two gold titles
    assert row["fetched_titles"] == ["Shirley Temple", "Meet Corliss Archer"]  # titles from the URLs
    assert row["cit_precision"] == 1.0 and row["cit_recall"] == 1.0
    assert row["gold_in_fetched"] == 1.0
    assert row["step_times"] == {"search": 0.5, "fetch": 0.25, "answer": 2.0}
    assert (row["tokens_in"], row["tokens_out"]) == (900, 40)
    assert set(gold) == {"Kiss and Tell (1945 film)", "Shirley Temple"}

    # a quote that is not on the page it cites is an invalid citation
    bad = _answer(example, "She was Chief of Protocol [1].", "Meet Corliss Archer", quote, ["Meet Corliss Archer"])
    row = score_answer(example, bad, "quick", page_texts=paragraphs)
    assert row["cit_precision"] == 0.0 and row["recall_fetched"] == 0.0 and row["gold_in_fetched"] == 0.0

    closed = Answer(question=example.question, text="I do not know.", mode="closed-book")
    row = score_answer(example, closed, "closed-book", page_texts=paragraphs)
    assert row["recall_fetched"] is None and row["cit_precision"] is None and row["f1"] == 0.0


def _fill(store: Store, example, tmp_path) -> str:
    run = store.create_run(EvalRun(id="20261128-000000-abcd", dataset="three.jsonl", modes=dumps(["closed-book", "quick"]),
                                   model="embedded", n_questions=2, command="moesearch eval run --limit 2",
                                   wall_s=95.0, status="done"))
    paragraphs = dict((t, " ".join(s)) for t, s in example.context)
    good = _answer(example, "Chief of Protocol [1].", "Shirley Temple",
                   "served as Chief of Protocol of the United States.", ["Shirley Temple", "Kiss and Tell (1945 film)"])
    meh = _answer(example, "An actress.", "Meet Corliss Archer", "Meet Corliss Archer", ["Meet Corliss Archer"])
    closed = Answer(question="", text="Ambassador", mode="closed-book")
    for i, (mode, ans, qid, short) in enumerate([("quick", good, "q1", "Chief of Protocol"),
                                                 ("quick", meh, "q2", "An actress"),
                                                 ("closed-book", closed, "q1", "Ambassador")]):
        ans = asdict(ans) | {"short_answer": short}  # Answer gains short_answer with the agent's short answers
        row = score_answer(example, ans, mode, page_texts=paragraphs)
        row = {k: dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()}
        store.add_result(EvalResult(run_id=run.id, mode=mode, question_id=qid, idx=i, question=example.question,
                                    gold=dumps(example.answers), latency_s=3.0 + i, **row))
    store.add_result(EvalResult(run_id=run.id, mode="closed-book", question_id="q2", idx=1, question="?",
                                gold=dumps(["x"]), error="ModelUnavailableError: model file missing",
                                short_em=0.0, short_f1=0.0))  # as the runner writes a failed question
    return run.id


def test_aggregate_counts_failures_as_wrong(eval_env, example, tmp_path):
    store = Store()
    run_id = _fill(store, example, tmp_path)
    m = aggregate(store.results(run_id))
    assert list(m) == ["closed-book", "quick"]
    assert m["quick"]["n"] == 2 and m["quick"]["errors"] == 0
    assert m["quick"]["em"]["mean"] == 0.5  # "Chief of Protocol [1]." is exact; "An actress." is not
    assert m["quick"]["short_em"]["mean"] == 0.5 and m["closed-book"]["short_f1"]["mean"] == 0.0
    assert m["closed-book"]["n"] == 2 and m["closed-book"]["errors"] == 1
    assert m["closed-book"]["f1"]["mean"] == 0.0 and m["closed-book"]["recall_fetched"]["mean"] is None
    assert m["quick"]["recall_fetched"]["mean"] == 0.5  # 1.0 and 0.0
    assert m["quick"]["f1_by_recall"]["all_gold_fetched"] == {"n": 1, "f1": 1.0, "acc": 1.0, "short_f1": 1.0}
    assert m["quick"]["by_evidence"]["answer_in_pages"] == {"n": 1, "f1": 1.0, "acc": 1.0, "short_f1": 1.0}
    assert m["quick"]["by_evidence"]["answer_not_in_pages"] == {"n": 1, "f1": 0.0, "acc": 0.0, "short_f1": 0.0}
    assert m["quick"]["step_s"]["answer"] == 2.0
    assert m["quick"]["latency_s"]["p50"] == pytest.approx(3.5)


def test_report_files_hold_the_runs_numbers(eval_env, example, tmp_path):
    store = Store()
    run_id = _fill(store, example, tmp_path)
    rep = make_report([run_id], tmp_path / "rep")
    md = rep.markdown.read_text(encoding="utf-8")
    assert rep.markdown.name == "report.md"
    assert [p.name for p in rep.plots] == ["scores.png", "latency.png", "steps.png"]
    for p in rep.plots:
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 5000
        assert f"({p.name})" in md
    quick = rep.metrics[run_id]["quick"]
    assert f"{100 * quick['short_em']['mean']:.1f} [" in rep.table  # 50.0 [0.0, 100.0]
    assert "| EM | F1 | Text F1 | Contains acc |" in rep.table  # the short answer's scores first
    assert f"| {run_id} | quick | 2 | 0 | 50.0 [0.0, 100.0] |" in md
    assert f"| {run_id} | closed-book | 2 | 1 | 0.0 [0.0, 0.0] |" in md
    assert "moesearch eval run --limit 2" in md and "ModelUnavailableError" in md
    assert "Lexical support check" in md  # the citation checking method is stated


def test_cli_list_and_report(eval_env, example, tmp_path):
    run_id = _fill(Store(), example, tmp_path)
    out = tmp_path / "cli-report"
    proc = subprocess.run([PY, "-m", "agent.cli", "eval", "report", run_id[:10], "--out", str(out)], cwd=ROOT,
                          env=eval_env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert f"| {run_id} | quick | 2 | 0 | 50.0 [0.0, 100.0] |" in proc.stdout
    assert (out / "report.md").exists() and (out / "steps.png").exists()
    proc = subprocess.run([PY, "-m", "agent.cli", "eval", "list", "--json"], cwd=ROOT, env=eval_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    listed = [json.loads(line) for line in proc.stdout.splitlines()]
    assert listed[0]["run_id"] == run_id and listed[0]["scored"] == 4 and listed[0]["status"] == "done"
    proc = subprocess.run([PY, "-m", "agent.cli", "eval", "report", "no-such-run"], cwd=ROOT, env=eval_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: no eval run")
