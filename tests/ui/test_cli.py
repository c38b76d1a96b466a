"""`moesearch ui`: a clear one-line error when the port is taken; the Streamlit command it runs."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.conftest import ROOT
from ui.cli import port_free, streamlit_argv


def test_port_taken_is_a_clear_error(ui_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        r = subprocess.run([sys.executable, "-m", "agent.cli", "ui", "--port", str(port)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert f"error: port {port} on 127.0.0.1 is already in use" in r.stderr
    assert f"--port {port + 1}" in r.stderr and "Traceback" not in r.stderr


def test_streamlit_runs_the_app_headless_on_the_given_address():
    argv = streamlit_argv("127.0.0.1", 8765)
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4].endswith("ui/app.py")
    joined = " ".join(argv)
    assert "--server.address 127.0.0.1" in joined and "--server.port 8765" in joined
    assert "--server.headless true" in joined and "--browser.gatherUsageStats false" in joined
    assert "--server.maxUploadSize 20" in joined
