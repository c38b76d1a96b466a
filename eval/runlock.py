"""Which eval runs are really running: the process that runs one holds an exclusive ``flock`` on a small file next
to the database while the run's status is ``running``. The kernel drops the lock when that process dies, however it
dies (kill -9 included), so a ``running`` row whose lock is free belongs to a process that is gone.

Lock files: ``<db folder>/.eval-run-locks/<db name>.<run id>.lock``; created by the runner, removed when it stops."""

from __future__ import annotations

import os
import time
from pathlib import Path

from eval.errors import RunConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no liveness check, a running row is taken at its word
    fcntl = None  # type: ignore[assignment]

_HELD: dict[str, int] = {}  # lock path -> open descriptor, for the runs this process is running


def lock_path(db: Path, run_id: str) -> Path:
    return Path(db).parent / ".eval-run-locks" / f"{Path(db).name}.{run_id}.lock"


def hold(db: Path, run_id: str) -> None:
    """Mark ``run_id`` as run by this process. Raises ``RunConfigError`` when another live process runs it."""
    path = lock_path(db, run_id)
    if fcntl is None or str(path) in _HELD:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    for _ in range(20):  # a concurrent liveness check holds it for microseconds
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _HELD[str(path)] = fd
            return
        except BlockingIOError:
            time.sleep(0.05)
    os.close(fd)
    raise RunConfigError(f"eval run {run_id} is being run by another process; wait for it to finish, or stop it "
                         "and resume")


def release(db: Path, run_id: str) -> None:
    """This process no longer runs ``run_id`` (it finished, failed or was interrupted cleanly)."""
    path = lock_path(db, run_id)
    fd = _HELD.pop(str(path), None)
    if fd is not None:
        path.unlink(missing_ok=True)
        os.close(fd)


def is_alive(db: Path, run_id: str) -> bool:
    """True when some live process holds ``run_id``'s lock (always True where locks are unavailable)."""
    path = lock_path(db, run_id)
    if fcntl is None or str(path) in _HELD:
        return True
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
