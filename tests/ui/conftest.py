"""Fixtures of the UI tests: a fresh database per test, one data folder (corpus index, model cache) for all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT

SAMPLE = "What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?"
ARTIFACTS = ROOT / "test-artifacts"
EVIL_TITLE = '<script>window.__pwned=1</script> Evil <img src=x onerror="window.__pwned=2"> page'


@pytest.fixture(scope="session")
def ui_index_dir(tmp_path_factory) -> Path:
    """The local corpus index, built once (on the first question, in seconds from the shipped vectors) for every UI
    test; MOESEARCH_UI_TEST_INDEX_DIR points the tests at an index built before."""
    return Path(os.environ.get("MOESEARCH_UI_TEST_INDEX_DIR") or tmp_path_factory.mktemp("ui-index"))


@pytest.fixture
def ui_env(tmp_path, monkeypatch, ui_index_dir) -> dict[str, str]:
    """MOESEARCH_* for one test: its own data folder and database; quick answers on the embedded defaults."""
    data = tmp_path / "data"
    env = {
        "MOESEARCH_DATA_DIR": str(data),
        "MOESEARCH_DB": str(data / "moesearch.db"),
        "MOESEARCH_INDEX_DIR": str(ui_index_dir),
        "MOESEARCH_MODE": "quick",
        "MOESEARCH_ANSWER_TOKENS": "160",
        "MOESEARCH_DEADLINE_S": "600",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("MOESEARCH_MODEL", raising=False)
    monkeypatch.delenv("MOESEARCH_BACKEND", raising=False)
    return env


@pytest.fixture
def evil_web():
    """A local web whose one page has a title carrying <script> and an <img onerror>."""
    from retrieval.localweb import LocalWeb
    from retrieval.types import Document

    docs = [Document(url="https://evil.example/page", title=EVIL_TITLE,
                     text="The Evil page says that the secret number is 4242. It was written in 2001 by Ann Smith, "
                          "a librarian from Leeds, who also kept bees.\n\nNothing else is known about the page.")]
    with LocalWeb(docs) as web:
        yield web
