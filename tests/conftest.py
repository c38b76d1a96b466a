"""Fixtures shared by every test area: the real embedded model and the real offline data."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MOESEARCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def embedded_model_path() -> Path:
    from model_runtime.registry import embedded_model_path

    return embedded_model_path()


@pytest.fixture(scope="session")
def embedded_llm(embedded_model_path):
    """The real embedded Gemma 3 270M through llama.cpp, loaded once per test session."""
    from model_runtime.llamacpp_backend import LlamaCppLLM

    llm = LlamaCppLLM(embedded_model_path, n_ctx=8192, chat_template="none", name="embedded")
    yield llm
    llm.close()


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until a server the test started answers 200 at `url`; fail at once if the process exits."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stderr or proc.stdout
            raise RuntimeError(f"server exited early: {out.read() if out else ''}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not healthy after {timeout}s")


@contextlib.contextmanager
def moesearch_server(args: list[str], health_url: str, *, env: dict | None = None, timeout: float = 120):
    """`moesearch ARGS` as a server in a subprocess: yields it once `health_url` answers 200, stops it after."""
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(health_url, proc, timeout)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh MOESEARCH_DATA_DIR and database for one test."""
    monkeypatch.setenv("MOESEARCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MOESEARCH_DB", str(tmp_path / "data" / "moesearch.db"))
    return tmp_path / "data"
