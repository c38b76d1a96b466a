"""The one SQLite file every package keeps its tables in (MOESEARCH_DB): one engine per file per process.

retrieval (fetch cache), ui (history) and eval (runs) each pass their own tables; this module creates them on first
use and sets the pragmas once: WAL, so readers never block a writer in another thread or process.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import Engine, Table, event
from sqlmodel import SQLModel, create_engine

_ENGINES: dict[str, Engine] = {}
_CREATED: dict[str, set[str]] = {}  # database file -> tables already created through its engine
_LOCK = threading.Lock()


def sqlite_engine(db: Path | str, tables: list[Table]) -> Engine:
    """The engine for the database file `db`, with `tables` created in it."""
    key = str(Path(db).expanduser().resolve())
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            Path(key).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(f"sqlite:///{key}", connect_args={"check_same_thread": False, "timeout": 60})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn, _record):  # noqa: ANN001
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=60000")
                cur.close()

            _ENGINES[key] = engine
        created = _CREATED.setdefault(key, set())
        new = [t for t in tables if t.name not in created]
        if new:
            for attempt in range(5):  # another process may be creating its tables in the same file
                try:
                    SQLModel.metadata.create_all(engine, tables=new)
                    break
                except Exception:  # noqa: BLE001 - "database is locked" while another process migrates
                    if attempt == 4:
                        raise
                    time.sleep(0.5 * (attempt + 1))
            created.update(t.name for t in new)
        return engine
