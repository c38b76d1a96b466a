"""A small real run: the embedded model answers HotpotQA questions over the local web (real HTTP on 127.0.0.1).

The run is started as `moesearch eval run` in a subprocess, killed with SIGKILL as soon as its first result row is
committed, and resumed with --resume: every question ends up scored exactly once and the rows written before the
kill are kept as they were. The report is made from the run, and a replay of its snapshot (no web) gives the same
evidence.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import PY, ROOT, write_subset

N = 3


def _agent_ready() -> bool:
    try:
        import agent
        import retrieval
    except ImportError:
        return False
    return hasattr(agent, "SearchAgent") and hasattr(retrieval, "LocalWeb")


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _agent_ready(), reason="agent.SearchAgent / retrieval.LocalWeb not in yet"),
]


def _cli(*args: str) -> list[str]:
    return [PY, "-m", "agent.cli", "eval", "run", *args]


def _db_rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(db, timeout=30)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:  # the tables are not created yet
        return []


def _last_json(stdout: str) -> dict:
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    assert lines, "no output"
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("evalrun")
    env = dict(os.environ)
    env.update(MOESEARCH_DATA_DIR=str(tmp / "data"), MOESEARCH_DB=str(tmp / "data" / "moesearch.db"),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    db = tmp / "data" / "moesearch.db"
    dataset = write_subset(tmp / "three.jsonl", N)
    args = ["--dataset", str(dataset), "--mode", "quick", "--limit", str(N), "--json", "--no-progress",
            "--set", "deadline_s=240"]

    proc = subprocess.Popen(_cli(*args), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    killed_at = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if _db_rows(db, "select count(*) from eval_result")[:1] not in ([], [(0,)]):
            proc.send_signal(signal.SIGKILL)
            killed_at = _db_rows(db, "select id, mode, question_id, finished_at, prediction from eval_result")
            break
        time.sleep(0.2)
    out, err = proc.communicate(timeout=60)
    assert killed_at is not None, f"no result row before the run ended (rc {proc.returncode}): {err[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    run_id, status = _db_rows(db, "select id, status from eval_run")[0]
    assert status == "running"  # killed: nothing could mark it

    resumed = subprocess.run(_cli("--resume", run_id[:12], "--json", "--no-progress"), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return {"tmp": tmp, "env": env, "db": db, "run_id": run_id, "killed_at": killed_at, "dataset": dataset,
            "summary": _last_json(resumed.stdout), "stderr": resumed.stderr}


def test_killed_run_resumes_and_scores_every_question_once(real_run):
    db, run_id = real_run["db"], real_run["run_id"]
    summary = real_run["summary"]
    assert summary["run_id"] == run_id and summary["scored"] == N
    rows = _db_rows(db, "select id, mode, question_id, finished_at, prediction, error from eval_result "
                        "where run_id = ?", (run_id,))
    assert len(rows) == N and len({r[2] for r in rows}) == N  # every question, exactly once
    before = {r[0]: r for r in real_run["killed_at"]}
    for r in rows:  # rows written before the kill were kept, not redone
        if r[0] in before:
            assert r[:5] == before[r[0]]
    assert _db_rows(db, "select status from eval_run where id = ?", (run_id,)) == [("done",)]
    m = summary["metrics"]["quick"]
    assert m["n"] == N and set(m) >= {"em", "f1", "acc", "recall_fetched", "recall_cited", "cit_precision",
                                      "cit_recall", "latency_s", "tokens_in", "tokens_out", "step_s"}
    assert m["recall_fetched"]["n"] == N - m["errors"]
    assert all(r[5] is None for r in rows), [r[5] for r in rows]  # the embedded model answered every question
    # the agent really searched and read the local web
    fetched = _db_rows(db, "select fetched_titles, tokens_out from eval_result where run_id = ?", (run_id,))
    assert all(json.loads(f) and t > 0 for f, t in fetched)


def test_report_of_the_real_run(real_run):
    out = real_run["tmp"] / "report"
    proc = subprocess.run([PY, "-m", "agent.cli", "eval", "report", real_run["run_id"], "--out", str(out)],
                          cwd=ROOT, env=real_run["env"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    md = (out / "report.md").read_text(encoding="utf-8")
    m = real_run["summary"]["metrics"]["quick"]
    f1 = f"{100 * m['f1']['mean']:.1f}"
    acc = f"{100 * m['acc']['mean']:.1f}"
    row = [line for line in md.splitlines() if line.startswith(f"| {real_run['run_id']} | quick | {N} |")]
    assert row and f1 in row[0] and acc in row[0]
    assert row[0] in proc.stdout  # the table is printed too
    for name in ("scores.png", "latency.png", "steps.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rescore_from_stored_answers_gives_the_same_metrics(real_run):
    proc = subprocess.run([PY, "-m", "agent.cli", "eval", "rescore", real_run["run_id"], "--json"], cwd=ROOT,
                          env=real_run["env"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    again = _last_json(proc.stdout)
    assert again["scored"] == N and again["metrics"] == real_run["summary"]["metrics"]


def test_replay_from_the_snapshot_gives_the_same_evidence(real_run):
    db, run_id = real_run["db"], real_run["run_id"]
    snapshot = _db_rows(db, "select snapshot from eval_run where id = ?", (run_id,))[0][0]
    assert snapshot and Path(snapshot).stat().st_size > 0
    proc = subprocess.run(_cli("--dataset", str(real_run["dataset"]), "--mode", "quick", "--limit", str(N),
                               "--replay", snapshot, "--json", "--no-progress", "--set", "deadline_s=240"),
                          cwd=ROOT, env=real_run["env"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    replay_id = _last_json(proc.stdout)["run_id"]
    assert replay_id != run_id
    q = "select question_id, fetched_urls, fetched_titles from eval_result where run_id = ? order by question_id"
    live, replayed = _db_rows(db, q, (run_id,)), _db_rows(db, q, (replay_id,))
    assert len(replayed) == N
    assert [(r[0], sorted(json.loads(r[1]))) for r in replayed] == [(r[0], sorted(json.loads(r[1]))) for r in live]
    assert _db_rows(db, "select provider from eval_run where id = ?", (replay_id,)) == [("replay",)]


def test_failed_questions_are_recorded_and_counted_wrong(tmp_path, eval_env):
    """A search engine that is down (a real closed port) fails each question: recorded with its error, scored 0."""
    from tests.conftest import free_port

    dataset = write_subset(tmp_path / "two.jsonl", 2)
    dead = f"http://127.0.0.1:{free_port()}"
    args = ["--dataset", str(dataset), "--mode", "quick", "--provider", "searxng", "--searxng-url", dead, "--json",
            "--no-progress"]
    proc = subprocess.run(_cli(*args), cwd=ROOT, env=eval_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _last_json(proc.stdout)
    m = summary["metrics"]["quick"]
    assert summary["scored"] == 2 and m["n"] == 2 and m["errors"] == 2
    assert m["f1"]["mean"] == 0.0 and m["acc"]["mean"] == 0.0
    db = Path(eval_env["MOESEARCH_DB"])
    errors = _db_rows(db, "select error, f1 from eval_result where run_id = ?", (summary["run_id"],))
    assert len(errors) == 2 and all("SearchUnavailableError" in e and f1 == 0.0 for e, f1 in errors), errors

    # failing in a row stops the run (exit 3, something unavailable); it stays resumable
    env = dict(eval_env, MOESEARCH_EVAL_MAX_CONSECUTIVE_ERRORS="1")
    proc = subprocess.run(_cli(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "resume with: moesearch eval run --resume" in proc.stderr
    run_id = proc.stderr.split("--resume ")[-1].split()[0]
    assert _db_rows(db, "select status from eval_run where id = ?", (run_id,)) == [("interrupted",)]
    assert _db_rows(db, "select count(*) from eval_result where run_id = ?", (run_id,)) == [(1,)]


def test_python_api_run_score_report(tmp_path, eval_env, embedded_llm):
    """The notebook path: load, run (with an already loaded model), score, report; resuming a done run is a no-op."""
    from eval import api

    ds = api.load_dataset(write_subset(tmp_path / "one.jsonl", 1))
    assert len(ds) == 1
    summary = api.run_eval(ds.path, modes=["closed-book"], llm=embedded_llm, agent={"answer_tokens": 48})
    assert summary.status == "done" and summary.scored == 1 and summary.snapshot is None
    scores = api.score(summary.run_id)
    assert scores["closed-book"]["n"] == 1 and scores == summary.metrics
    again = api.run_eval(resume=summary.run_id, llm=embedded_llm)
    assert again.scored == 1 and again.metrics == summary.metrics
    rep = api.report([summary.run_id], tmp_path / "rep")
    assert rep.markdown.exists() and f"| {summary.run_id} | closed-book | 1 |" in rep.table


def test_ctrl_c_marks_the_run_interrupted_without_crashing(tmp_path, eval_env):
    """SIGINT while the model is generating: the run is marked interrupted (no crash freeing the model under a
    running generation) and a resume finishes it."""
    dataset = write_subset(tmp_path / "four.jsonl", 4)
    db = Path(eval_env["MOESEARCH_DB"])
    proc = subprocess.Popen(_cli("--dataset", str(dataset), "--mode", "closed-book", "--no-progress",
                                 "--set", "answer_tokens=48"),
                            cwd=ROOT, env=eval_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if _db_rows(db, "select count(*) from eval_result")[:1] not in ([], [(0,)]):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode >= 0, f"crashed with signal {-proc.returncode}: {err[-1500:]}"
    (run_id, status), = _db_rows(db, "select id, status from eval_run")
    done = _db_rows(db, "select count(*) from eval_result")[0][0]
    assert status == ("done" if done == 4 else "interrupted")
    resumed = subprocess.run(_cli("--resume", run_id, "--json", "--no-progress"), cwd=ROOT, env=eval_env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _last_json(resumed.stdout)["scored"] == 4
