"""Chat history and sidebar settings in SQLite through SQLModel (tables `ui_conversation`, `ui_message`,
`ui_document`, `ui_setting`, owned by ui, in the one database file every package shares).

A question is committed before the agent starts on it (status ``pending``) and its answer the moment it is done, so a
restart mid-answer loses nothing: the unanswered question is still there, and the app offers to retry it.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Column, LargeBinary
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, delete, select

from retrieval.db import sqlite_engine

from ui.errors import ConversationNotFoundError

DEFAULT_TITLE = "New chat"
TITLE_CHARS = 80


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Conversation(SQLModel, table=True):
    __tablename__ = "ui_conversation"

    id: str = Field(primary_key=True)
    title: str = DEFAULT_TITLE
    created_at: str = Field(default_factory=_now)
    updated_at: str = Field(default_factory=_now, index=True)


class Message(SQLModel, table=True):
    """One question and (once done) its answer."""

    __tablename__ = "ui_message"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(index=True, foreign_key="ui_conversation.id")
    question: str
    status: str = "pending"  # pending | done | error
    answer: str | None = None  # JSON: the Answer as a dict (see ui.render.answer_view)
    steps: str = "[]"  # JSON list of the step lines shown while answering
    error: str | None = None
    created_at: str = Field(default_factory=_now)
    answered_at: str | None = None

    @property
    def answer_dict(self) -> dict[str, Any] | None:
        return json.loads(self.answer) if self.answer else None

    @property
    def step_list(self) -> list[str]:
        return json.loads(self.steps or "[]")


class StoredDocument(SQLModel, table=True):
    """A page or file the user asked the agent to read; kept as the original bytes and re-read when needed."""

    __tablename__ = "ui_document"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(index=True, foreign_key="ui_conversation.id")
    name: str  # file name or URL, as the user gave it
    url: str | None = None
    content_type: str | None = None
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    title: str = ""
    created_at: str = Field(default_factory=_now)


class Setting(SQLModel, table=True):
    __tablename__ = "ui_setting"

    key: str = Field(primary_key=True)
    value: str  # JSON


def engine_for(db: Path | str) -> Engine:
    """The database's engine with the ui tables created; WAL so readers never block the background thread that
    writes answers."""
    return sqlite_engine(db, [Conversation.__table__, Message.__table__, StoredDocument.__table__, Setting.__table__])


def title_from(question: str) -> str:
    t = " ".join(question.split())
    return t if len(t) <= TITLE_CHARS else t[: TITLE_CHARS - 1].rstrip() + "…"


class Store:
    def __init__(self, db: Path | str):
        self.engine = engine_for(db)
        self.key = str(Path(db).expanduser().resolve())  # tells apart databases in one process (tests)

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # conversations ------------------------------------------------------------------------------------------------
    def new_conversation(self, title: str = DEFAULT_TITLE) -> Conversation:
        conv = Conversation(id=secrets.token_hex(6), title=title)
        with self._session() as s:
            s.add(conv)
            s.commit()
        return conv

    def conversations(self) -> list[Conversation]:
        with self._session() as s:
            return list(s.exec(select(Conversation).order_by(Conversation.updated_at.desc())))

    def conversation(self, conv_id: str) -> Conversation:
        with self._session() as s:
            conv = s.get(Conversation, conv_id)
        if conv is None:
            raise ConversationNotFoundError(f"conversation {conv_id!r} no longer exists; pick another one")
        return conv

    def rename(self, conv_id: str, title: str) -> Conversation:
        title = " ".join(title.split())[:TITLE_CHARS] or DEFAULT_TITLE
        with self._session() as s:
            conv = s.get(Conversation, conv_id)
            if conv is None:
                raise ConversationNotFoundError(f"conversation {conv_id!r} no longer exists; pick another one")
            conv.title = title
            s.add(conv)
            s.commit()
            return conv

    def delete_conversation(self, conv_id: str) -> None:
        with self._session() as s:
            s.exec(delete(Message).where(Message.conversation_id == conv_id))
            s.exec(delete(StoredDocument).where(StoredDocument.conversation_id == conv_id))
            s.exec(delete(Conversation).where(Conversation.id == conv_id))
            s.commit()

    def _touch(self, s: Session, conv_id: str, question: str | None = None) -> None:
        conv = s.get(Conversation, conv_id)
        if conv is None:
            raise ConversationNotFoundError(f"conversation {conv_id!r} no longer exists; pick another one")
        conv.updated_at = _now()
        if question and conv.title == DEFAULT_TITLE:
            conv.title = title_from(question)
        s.add(conv)

    # messages -----------------------------------------------------------------------------------------------------
    def add_question(self, conv_id: str, question: str) -> Message:
        """Store a question before it is answered (status pending)."""
        with self._session() as s:
            self._touch(s, conv_id, question)
            msg = Message(conversation_id=conv_id, question=question)
            s.add(msg)
            s.commit()
            s.refresh(msg)
            return msg

    def message(self, msg_id: int) -> Message | None:
        with self._session() as s:
            return s.get(Message, msg_id)

    def messages(self, conv_id: str) -> list[Message]:
        with self._session() as s:
            return list(s.exec(select(Message).where(Message.conversation_id == conv_id).order_by(Message.id)))

    def _update(self, msg_id: int, **fields: Any) -> Message | None:
        with self._session() as s:
            msg = s.get(Message, msg_id)
            if msg is None:  # the conversation was deleted while the answer was being written
                return None
            for k, v in fields.items():
                setattr(msg, k, v)
            s.add(msg)
            conv = s.get(Conversation, msg.conversation_id)
            if conv is not None:
                conv.updated_at = _now()
                s.add(conv)
            s.commit()
            return msg

    def set_answer(self, msg_id: int, answer: dict[str, Any], steps: list[str] | None = None) -> Message | None:
        return self._update(msg_id, status="done", answer=json.dumps(answer, default=str),
                            steps=json.dumps(steps or []), error=None, answered_at=_now())

    def set_error(self, msg_id: int, message: str, steps: list[str] | None = None) -> Message | None:
        return self._update(msg_id, status="error", error=message, steps=json.dumps(steps or []), answered_at=_now())

    def set_pending(self, msg_id: int) -> Message | None:
        """Clear an answer to ask the same question again (retry, regenerate)."""
        return self._update(msg_id, status="pending", answer=None, error=None, steps="[]", answered_at=None)

    def history(self, conv_id: str, before: int | None = None) -> list[tuple[str, str]]:
        """(question, answer text) of the answered messages of a conversation, oldest first, before message `before`."""
        out = []
        for m in self.messages(conv_id):
            if before is not None and m.id is not None and m.id >= before:
                break
            if m.status == "done" and m.answer:
                out.append((m.question, json.loads(m.answer).get("answer", "")))
        return out

    # documents ----------------------------------------------------------------------------------------------------
    def add_document(self, conv_id: str, name: str, data: bytes, *, url: str | None = None,
                     content_type: str | None = None, title: str = "") -> StoredDocument:
        with self._session() as s:
            self._touch(s, conv_id)
            doc = StoredDocument(conversation_id=conv_id, name=name, url=url, content_type=content_type, data=data,
                                 title=title)
            s.add(doc)
            s.commit()
            s.refresh(doc)
            return doc

    def documents(self, conv_id: str) -> list[StoredDocument]:
        with self._session() as s:
            return list(s.exec(select(StoredDocument).where(StoredDocument.conversation_id == conv_id)
                               .order_by(StoredDocument.id)))

    def remove_document(self, doc_id: int) -> None:
        with self._session() as s:
            s.exec(delete(StoredDocument).where(StoredDocument.id == doc_id))
            s.commit()

    # settings -----------------------------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        with self._session() as s:
            return {row.key: json.loads(row.value) for row in s.exec(select(Setting))}

    def put_settings(self, values: dict[str, Any]) -> None:
        with self._session() as s:
            for k, v in values.items():
                row = s.get(Setting, k) or Setting(key=k, value="null")
                row.value = json.dumps(v)
                s.add(row)
            s.commit()
