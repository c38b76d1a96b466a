"""`moesearch ui`: start the Streamlit chat app (headless, on 127.0.0.1 by default)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ui.errors import PortInUseError, UIError

APP = Path(__file__).resolve().parent / "app.py"


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def streamlit_argv(host: str, port: int, max_upload_mb: int = 20) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--server.maxUploadSize", str(max_upload_mb),
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
            "--client.toolbarMode", "minimal"]


def ui_command(
    port: Annotated[Optional[int], typer.Option("--port", "-p", help="port to listen on (default 8501)")] = None,
    host: Annotated[Optional[str], typer.Option("--host", help="address to listen on (default 127.0.0.1)")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="'embedded', a preset name or a .gguf path")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="where the database and indexes live")] = None,
) -> None:
    """Start the web app: streamed answers with citations, live steps, history, settings."""
    from pydantic import ValidationError

    from ui.settings import UISettings

    env = dict(os.environ)
    if model:
        env["MOESEARCH_MODEL"] = model
    if data_dir:
        env["MOESEARCH_DATA_DIR"] = str(data_dir)
    try:
        settings = UISettings(_env_file=None, **({"data_dir": data_dir} if data_dir else {}))
    except ValidationError as e:
        err = e.errors()[0]
        raise UIError(f"invalid setting {'.'.join(map(str, err['loc']))}: {err['msg']}; check MOESEARCH_* variables") from None
    port = port if port is not None else settings.ui_port
    host = host or settings.ui_host
    if not 1 <= port <= 65535:
        raise UIError(f"port {port} is out of range; use 1-65535, e.g. --port 8501")
    if not port_free(host, port):
        raise PortInUseError(f"port {port} on {host} is already in use; stop what runs there or pick another, "
                             f"e.g. moesearch ui --port {port + 1}")
    if model:  # a flag wins over what the sidebar stored last time, and is stored in its place
        from ui.prefs import model_choice
        from ui.store import Store

        store = Store(settings.db)
        stored = store.settings().get("prefs")
        if stored:
            store.put_settings({"prefs": stored | model_choice(model)})
    env["MOESEARCH_DATA_DIR"] = str(settings.data_dir)
    env["MOESEARCH_DB"] = str(settings.db)
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    print(f"moesearch ui: http://{host}:{port}  (database {settings.db}; Ctrl-C to stop)", file=sys.stderr, flush=True)
    argv = streamlit_argv(host, port, settings.ui_max_upload_mb)
    if os.name == "posix":
        sys.stdout.flush()
        os.execve(argv[0], argv, env)  # the app becomes this process: signals (Ctrl-C, SIGTERM) reach it directly
    import subprocess

    raise typer.Exit(subprocess.call(argv, env=env))
