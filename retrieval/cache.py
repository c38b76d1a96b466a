"""The fetch cache: one table in the shared SQLite database (``retrieval_fetch_cache``), through SQLModel.

SQLite in WAL mode with one transaction per write: a process killed mid-write leaves the previous state intact."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, Session, SQLModel, select

from .db import sqlite_engine


class FetchCacheEntry(SQLModel, table=True):
    __tablename__ = "retrieval_fetch_cache"

    url: str = Field(primary_key=True)
    final_url: str
    status: int
    content_type: str
    headers_json: str = "{}"
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    fetched_at: float = Field(index=True)
    etag: str | None = None
    last_modified: str | None = None


def _engine(db: Path):
    return sqlite_engine(db, [FetchCacheEntry.__table__])


class FetchCache:
    def __init__(self, db: Path, ttl_s: float):
        self.db = Path(db)
        self.ttl_s = ttl_s
        self.engine = _engine(self.db)

    def get(self, url: str) -> FetchCacheEntry | None:
        with Session(self.engine) as s:
            entry = s.get(FetchCacheEntry, url)
            if entry is not None:
                s.expunge(entry)
            return entry

    def is_fresh(self, entry: FetchCacheEntry, now: float | None = None) -> bool:
        return ((now or time.time()) - entry.fetched_at) < self.ttl_s

    def put(self, url: str, final_url: str, status: int, content_type: str, headers: dict[str, str], body: bytes,
            fetched_at: float) -> None:
        entry = FetchCacheEntry(url=url, final_url=final_url, status=status, content_type=content_type,
                                headers_json=json.dumps(headers), body=body, fetched_at=fetched_at,
                                etag=headers.get("etag"), last_modified=headers.get("last-modified"))
        with Session(self.engine) as s:
            s.merge(entry)
            s.commit()

    def touch(self, url: str, fetched_at: float) -> None:
        with Session(self.engine) as s:
            entry = s.get(FetchCacheEntry, url)
            if entry is not None:
                entry.fetched_at = fetched_at
                s.add(entry)
                s.commit()

    def count(self) -> int:
        with Session(self.engine) as s:
            return len(s.exec(select(FetchCacheEntry.url)).all())

    def clear(self) -> None:
        with Session(self.engine) as s:
            for e in s.exec(select(FetchCacheEntry)).all():
                s.delete(e)
            s.commit()
