"""ui.store on a real SQLite file: conversations, questions stored before answering, settings."""

from __future__ import annotations

import sqlite3

import pytest

from ui.errors import ConversationNotFoundError
from ui.store import DEFAULT_TITLE, Store


@pytest.fixture
def db(tmp_path):
    return tmp_path / "moesearch.db"


def test_a_question_survives_a_restart_before_its_answer(db):
    store = Store(db)
    conv = store.new_conversation()
    msg = store.add_question(conv.id, "Who wrote   Dune?")
    # a new process (a restart mid-answer) sees the question, still pending
    again = Store(str(db))
    (m,) = again.messages(conv.id)
    assert m.id == msg.id and m.status == "pending" and m.answer is None
    assert again.conversation(conv.id).title == "Who wrote Dune?"
    again.set_answer(m.id, {"answer": "Frank Herbert [1].", "citations": []}, ["**Search** x"])
    m = again.message(m.id)
    assert m.status == "done" and m.answer_dict["answer"] == "Frank Herbert [1]." and m.step_list == ["**Search** x"]


def test_history_is_the_answered_questions_before_a_message(db):
    store = Store(db)
    conv = store.new_conversation()
    a = store.add_question(conv.id, "q1")
    store.set_answer(a.id, {"answer": "a1"})
    b = store.add_question(conv.id, "q2")
    store.set_error(b.id, "model missing")
    c = store.add_question(conv.id, "q3")
    assert store.history(conv.id, before=c.id) == [("q1", "a1")]
    assert store.history(conv.id, before=a.id) == []
    store.set_answer(c.id, {"answer": "a3"})
    assert store.history(conv.id) == [("q1", "a1"), ("q3", "a3")]
    store.set_pending(c.id)  # regenerate
    assert store.message(c.id).status == "pending" and store.history(conv.id) == [("q1", "a1")]


def test_list_rename_delete(db):
    store = Store(db)
    one, two = store.new_conversation(), store.new_conversation()
    store.add_question(one.id, "first question")
    assert [c.id for c in store.conversations()][0] == one.id  # most recently used first
    store.rename(one.id, "  My   chat ")
    assert store.conversation(one.id).title == "My chat"
    assert store.rename(two.id, "").title == DEFAULT_TITLE
    store.add_document(one.id, "a.txt", b"hello", content_type="text/plain", title="a")
    store.delete_conversation(one.id)
    assert [c.id for c in store.conversations()] == [two.id]
    assert store.messages(one.id) == [] and store.documents(one.id) == []
    with pytest.raises(ConversationNotFoundError):
        store.conversation(one.id)
    with pytest.raises(ConversationNotFoundError):
        store.add_question(one.id, "x")
    assert store.set_answer(12345, {"answer": "gone"}) is None  # deleted while answering: nothing to write


def test_documents_keep_the_original_bytes(db):
    store = Store(db)
    conv = store.new_conversation()
    d = store.add_document(conv.id, "report.pdf", b"%PDF-1.4 \x00\xff", content_type="application/pdf", title="R")
    (got,) = store.documents(conv.id)
    assert got.data == b"%PDF-1.4 \x00\xff" and got.title == "R"
    store.remove_document(d.id)
    assert store.documents(conv.id) == []


def test_settings_round_trip_and_tables_are_prefixed(db):
    store = Store(db)
    store.put_settings({"prefs": {"mode": "deep", "max_pages": 3}})
    store.put_settings({"prefs": {"mode": "quick", "max_pages": 3}})
    assert Store(db).settings() == {"prefs": {"mode": "quick", "max_pages": 3}}
    tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")}
    assert tables == {"ui_conversation", "ui_message", "ui_document", "ui_setting"}
