"""Fixtures for the evaluator's tests: a fresh database per test, small real datasets cut from the shipped set."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "eval" / "data" / "hotpotqa-dev.jsonl"
PY = sys.executable


@pytest.fixture
def eval_env(tmp_path, monkeypatch) -> dict[str, str]:
    """MOESEARCH_DATA_DIR and MOESEARCH_DB in a temporary folder; returns the environment for subprocesses."""
    data = tmp_path / "data"
    monkeypatch.setenv("MOESEARCH_DATA_DIR", str(data))
    monkeypatch.setenv("MOESEARCH_DB", str(data / "moesearch.db"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def write_subset(path: Path, n: int, start: int = 0) -> Path:
    """The first `n` questions (from `start`) of the shipped HotpotQA dev set, as a JSONL file."""
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()[start:start + n]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
