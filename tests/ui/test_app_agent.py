"""The app's flows through AppTest with the real agent on the embedded defaults (quick mode)."""

from __future__ import annotations

import pytest

from tests.conftest import free_port
from tests.ui.conftest import SAMPLE
from tests.ui.test_app import AGENT, all_markdown, app, store, stored_conversation
from ui.prefs import MODEL_GGUF


@pytest.mark.slow
def test_error_then_reviewed_plan_answer_and_follow_up(ui_env):
    """A missing model file is a clear error and the app keeps working; with "review the plan" on, the plan shows,
    the user edits it, and the answer streams with citations, source cards and follow-up questions; a follow-up
    asks again in the same conversation."""
    at = app().run()
    at.selectbox(key="pref_model").set_value(MODEL_GGUF).run()
    at.text_input(key="pref_gguf_path").set_value("/nonexistent/model.gguf").run()
    at.chat_input[0].set_value("Who wrote Dune?").run(timeout=120)
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error), (
        [e.value for e in at.error], [m.model_dump() for c in store().conversations() for m in store().messages(c.id)],
        all_markdown(at), [i.value for i in at.info])
    (conv,) = store().conversations()
    (failed,) = store().messages(conv.id)
    assert failed.status == "error"
    at.button(key=f"retry-{failed.id}").click().run(timeout=120)  # retry asks the same stored question again
    assert [m.id for m in store().messages(conv.id)] == [failed.id] and store().message(failed.id).status == "error"
    assert any("does not exist" in e.value for e in at.error)

    # an unreachable search engine: a clear error too
    at.selectbox(key="pref_model").set_value("embedded").run()
    at.radio(key="pref_provider").set_value("searxng").run()
    at.text_input(key="pref_searxng_url").set_value(f"http://127.0.0.1:{free_port()}").run()
    at.chat_input[0].set_value("Who wrote Dune?").run(timeout=AGENT)
    assert not at.exception
    assert store().messages(conv.id)[1].status == "error"
    assert at.error[-1].value and "searxng" in at.error[-1].value.lower(), [e.value for e in at.error]

    # the app keeps working: the local corpus, and review the plan first
    at.radio(key="pref_provider").set_value("local").run()
    at.toggle(key="pref_review_plan").set_value(True).run()
    at.chat_input[0].set_value(SAMPLE).run(timeout=AGENT)
    assert not at.exception
    asked = store().messages(conv.id)[2]
    assert asked.status == "pending" and asked.question == SAMPLE  # stored before answering
    area = at.text_area(key=f"plan-{asked.id}")
    area.set_value("Who portrayed Corliss Archer in the film Kiss and Tell?\n"
                   "What government position did Shirley Temple hold?")
    at.button[[b.label for b in at.button].index("Search with this plan")].click().run(timeout=AGENT)
    assert not at.exception
    asked = store().message(asked.id)
    assert asked.status == "done", asked.error
    view = asked.answer_dict
    assert view["answer"] and view["citations"], view
    searched = [s for s in asked.step_list if s.startswith("**Search**")]
    assert any("Shirley Temple" in s for s in searched), asked.step_list  # the edited plan was used
    md = all_markdown(at)
    c = view["citations"][0]
    assert f"[\\[{c['n']}\\]](" in md and "**Sources**" in md
    assert at.status[-1].label.startswith("Done:") and not at.status[-1].proto.expanded
    follow = [b for b in at.button if b.key and b.key.startswith(f"follow-{asked.id}-")]
    assert 1 <= len(follow) <= 3, view["follow_ups"]

    # a suggested follow-up is asked in the same conversation (and planned for review first)
    follow[0].click().run(timeout=AGENT)
    assert not at.exception
    third = store().messages(conv.id)[3]
    assert third.status == "pending" and third.question == view["follow_ups"][0]
    assert at.text_area(key=f"plan-{third.id}") is not None  # its plan waits for review (it may be empty: the
    # question itself is always searched)
    assert store().history(conv.id, before=third.id) == [(SAMPLE, view["answer"])]  # errors are not history


def test_regenerate_asks_the_same_stored_question_again(ui_env):
    """Regenerate replaces the answer of the same message; a failure (here: a missing model) shows as an error."""
    conv_id, done_id, _ = stored_conversation(store())
    store().put_settings({"prefs": {"model": MODEL_GGUF, "gguf_path": "/nonexistent/model.gguf"}})
    at = app().run()
    at.button(key=f"open-{conv_id}").click().run()
    at.button(key=f"regen-{done_id}").click().run(timeout=120)
    assert not at.exception
    assert len(store().messages(conv_id)) == 2
    msg = store().message(done_id)
    assert msg.status == "error" and "does not exist" in msg.error and msg.answer is None
    assert at.button(key=f"retry-{done_id}")
