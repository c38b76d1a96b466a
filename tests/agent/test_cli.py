"""`moesearch ask` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.agent.conftest import SAMPLE


def ask(*args, env_dir):
    env = {**os.environ, "MOESEARCH_DATA_DIR": str(env_dir), "MOESEARCH_DB": str(env_dir / "moesearch.db")}
    return subprocess.run([sys.executable, "-m", "agent.cli", "ask", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_ask_prints_a_cited_answer_as_json(agent_data_dir, local_agent):
    local_agent.ask("Kiss and Tell", mode="quick")  # the session's index is built once, then reused here
    r = ask(SAMPLE, "--mode", "quick", "--json", env_dir=agent_data_dir)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["question"] == SAMPLE and out["answer"]
    assert out["citations"] and all(c["quote"] and c["url"].startswith("https://") for c in out["citations"])
    assert "search" in r.stderr  # the steps were shown while working
    assert "llama_" not in r.stderr  # llama.cpp's own log lines stay out of the user's terminal


def test_verbose_also_shows_the_model_runtime_lines(agent_data_dir):
    r = ask("Who wrote Dune?", "--mode", "closed-book", "--verbose", env_dir=agent_data_dir)
    assert r.returncode == 0, r.stderr
    assert "llama_" in r.stderr


def test_bad_input_gives_one_line_errors(agent_data_dir):
    r = ask("  ", env_dir=agent_data_dir)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: the question is empty")
    r = ask(SAMPLE, "--mode", "fast", env_dir=agent_data_dir)
    assert r.returncode == 2 and "unknown mode" in r.stderr and "Traceback" not in r.stderr
    r = ask(SAMPLE, "--model", "/nowhere/model.gguf", env_dir=agent_data_dir)
    assert r.returncode == 3 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 3


def test_a_usage_mistake_is_a_short_message_not_a_traceback(tmp_path):
    for args in (["ask"], ["ask", "x", "--bogus"], ["eval", "run", "--bogus"], ["ui", "-q"]):
        r = subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and "Error:" in r.stderr and "--help" in r.stderr
