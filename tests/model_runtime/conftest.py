from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import free_port, wait_healthy  # noqa: F401 - wait_healthy is imported from here by tests

MOESEARCH = [sys.executable, "-m", "agent.cli"]


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*MOESEARCH, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def model_server():
    """`moesearch model serve` on the embedded model, on a free 127.0.0.1 port; stopped at the end."""
    port = free_port()
    proc = subprocess.Popen([*MOESEARCH, "model", "serve", "--port", str(port), "--n-ctx", "4096"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base + "/health", proc)
        yield base + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
