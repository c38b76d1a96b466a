from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import free_port, moesearch_server

MOESEARCH = [sys.executable, "-m", "agent.cli"]


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*MOESEARCH, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def model_server():
    """`moesearch model serve` on the embedded model, on a free 127.0.0.1 port; stopped at the end."""
    base = f"http://127.0.0.1:{free_port()}"
    with moesearch_server(["model", "serve", "--port", base.rsplit(":", 1)[1], "--n-ctx", "4096"], base + "/health"):
        yield base + "/v1"
