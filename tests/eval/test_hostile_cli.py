"""Kind 12 of issue 15: hostile CLI input gives one line that says what to do and a non-zero exit (a question that
is not UTF-8, --model naming a folder, a dataset line of deeply nested JSON), and a killed eval run is listed as
`interrupted`, not `running`. Everything runs as the real `moesearch` (python -m agent.cli) in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from eval.datasets import load_dataset
from eval.errors import MalformedDatasetError, RunConfigError
from eval.store import EvalRun, Store

from .conftest import PY, ROOT, write_subset


def cli(args: list, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "agent.cli", *args], cwd=ROOT, env=env, capture_output=True, timeout=timeout)


def one_line_error(p: subprocess.CompletedProcess, code: int) -> str:
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == code, (p.returncode, err[-2000:])
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning: command group")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    return lines[0]


@pytest.mark.parametrize("question", [b"caf\xe9 au lait?", b"\xff\xfe?", b"who \xed\xa0\x80 is"])
def test_question_that_is_not_utf8(eval_env, question):
    line = one_line_error(cli(["ask", question, "--mode", "closed-book", "--quiet"], eval_env), 2)
    assert "not valid UTF-8" in line


def test_model_naming_a_folder(eval_env, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    line = one_line_error(cli(["ask", "Who wrote Dune?", "--mode", "closed-book", "--quiet", "--model", str(folder)],
                              eval_env), 3)
    assert "is a folder" in line
    line = one_line_error(cli(["eval", "run", "--model", str(folder) + os.sep, "--limit", "1", "--no-progress"],
                              eval_env), 3)
    assert "is a folder" in line


NESTED = "[" * 100_000 + "]" * 100_000
NESTED_FIELD = json.dumps({"id": "n", "question": "q?", "answers": ["a"]})[:-1] + ', "extra": ' + "{\"a\":" * 50_000 + \
    "1" + "}" * 50_000 + "}"


@pytest.mark.parametrize("line", [NESTED, NESTED_FIELD], ids=["nested-array", "nested-field"])
def test_dataset_line_of_deeply_nested_json(eval_env, tmp_path, line):
    only = tmp_path / "nested.jsonl"
    only.write_text(line + "\n", encoding="utf-8")
    err = one_line_error(cli(["eval", "run", "--dataset", str(only), "--no-progress"], eval_env), 2)
    assert "nested too deeply" in err
    stop = one_line_error(cli(["eval", "run", "--dataset", str(only), "--on-bad-line", "stop", "--no-progress"],
                              eval_env), 2)
    assert "line 1: JSON nested too deeply" in stop
    mixed = write_subset(tmp_path / "mixed.jsonl", 2)
    mixed.write_text(mixed.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")
    ds = load_dataset(mixed)  # skipped with its reason; the rest is read
    assert len(ds.examples) == 2 and "nested too deeply" in str(ds.problems[0])
    with pytest.raises(MalformedDatasetError, match="line 3: JSON nested too deeply"):
        load_dataset(mixed, on_bad_line="stop")


def _runs(env: dict) -> list[dict]:
    p = cli(["eval", "list", "--json"], env)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.decode().splitlines() if line.strip()]


def test_a_killed_eval_run_is_listed_as_interrupted(eval_env, tmp_path):
    """A real closed-book run on the embedded model, killed with SIGKILL while running."""
    dataset = write_subset(tmp_path / "five.jsonl", 5)
    proc = subprocess.Popen([PY, "-m", "agent.cli", "eval", "run", "--dataset", str(dataset), "--mode",
                             "closed-book", "--no-progress"], cwd=ROOT, env=eval_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        runs: list[dict] = []
        while time.monotonic() < deadline and proc.poll() is None and not runs:
            time.sleep(0.5)
            runs = _runs(eval_env)
        assert runs and proc.poll() is None, "the run did not start"
        assert runs[0]["status"] == "running"  # alive: listed as running
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    runs = _runs(eval_env)
    assert runs[0]["status"] == "interrupted"
    text = cli(["eval", "list"], eval_env).stdout.decode()
    assert "interrupted" in text and " running " not in text


def test_a_run_held_by_a_live_process_is_running_and_a_dead_one_interrupted(eval_env, tmp_path):
    """The same through the store, with a helper process that holds a run and is killed."""
    code = ("import os, signal, sys; from eval.store import EvalRun, Store; s = Store(); "
            "s.create_run(EvalRun(id=sys.argv[1], status='running')); print('held', flush=True); "
            "sys.stdin.read()")
    p = subprocess.Popen([PY, "-c", code, "run-held"], cwd=ROOT, env=eval_env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"held"
        store = Store()
        assert store.get_run("run-held").status == "running"
        with pytest.raises(RunConfigError, match="another process"):
            store.update_run("run-held", status="running")  # resuming a run that is still being run
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    run = Store().get_run("run-held")
    assert run.status == "interrupted" and "resume" in run.error
    store.update_run("run-held", status="running")  # resumable now
    assert store.get_run("run-held").status == "running"
    store.update_run("run-held", status="done")
    assert Store().get_run("run-held").status == "done"
    assert not list((Path(eval_env["MOESEARCH_DB"]).parent / ".eval-run-locks").glob("*run-held*"))
