"""The app's flows through streamlit.testing's AppTest on a real database, without asking the model anything
(the flows that ask are in test_app_agent.py)."""

from __future__ import annotations

from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.ui.conftest import EVIL_TITLE
from ui.render import escape_md
from ui.settings import UISettings
from ui.store import Store

APP = ROOT / "ui" / "app.py"
QUICK = 30  # seconds for a run that does not ask the model anything
AGENT = 840  # a run that answers: the first builds the corpus index


def app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=QUICK)


def store() -> Store:
    return Store(UISettings().db)


def all_markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def stored_conversation(s: Store) -> tuple[str, int, int]:
    conv = s.new_conversation()
    done = s.add_question(conv.id, "Who played Corliss Archer?")
    s.set_answer(done.id, {
        "answer": "Shirley Temple played her [1]. A second page [2].",
        "citations": [
            {"n": 1, "url": "https://en.wikipedia.org/wiki/Shirley_Temple", "title": "Shirley Temple",
             "quote": "Shirley Temple Black was an American actress.", "published": "2014-02-10"},
            {"n": 2, "url": "http://127.0.0.1:9/wiki/Evil", "title": EVIL_TITLE, "quote": "<b>bold</b> quote",
             "published": None}],
        "sources": [{"url": "https://example.org/x", "title": "Also <read>", "published": None}],
        "follow_ups": ["When was Shirley Temple born?", "What films did she make?"],
        "warnings": ["evidence cut to fit the context window"], "settled": True, "elapsed_s": 4.2,
        "short_answer": "Shirley Temple",
    }, ["**Search** “corliss archer”: 5 hits", "**Read** “Shirley Temple”: kept 2 passages"])
    pending = s.add_question(conv.id, "And who directed it?")
    return conv.id, done.id, pending.id


def test_empty_app_and_settings_that_persist(ui_env):
    at = app().run()
    assert not at.exception
    assert "What do you want to know?" in all_markdown(at)
    assert at.radio(key="pref_mode").value == "quick"  # from MOESEARCH_MODE
    at.radio(key="pref_mode").set_value("deep").run()
    at.number_input(key="pref_max_pages").set_value(3).run()
    at.selectbox(key="pref_time_range").set_value("month").run()
    at.toggle(key="pref_review_plan").set_value(True).run()
    at.radio(key="pref_provider").set_value("searxng").run()
    at.text_input(key="pref_searxng_url").set_value("http://127.0.0.1:8888").run()
    assert not at.exception
    again = app().run()  # a new browser session, same database
    assert again.radio(key="pref_mode").value == "deep"
    assert again.number_input(key="pref_max_pages").value == 3
    assert again.selectbox(key="pref_time_range").value == "month"
    assert again.toggle(key="pref_review_plan").value is True
    assert again.radio(key="pref_provider").value == "searxng"
    assert store().settings()["prefs"]["searxng_url"] == "http://127.0.0.1:8888"


def test_history_open_answer_sources_retry_rename_delete(ui_env):
    conv_id, done_id, pending_id = stored_conversation(store())
    at = app().run()
    titles = [b.label for b in at.sidebar.button if b.key and b.key.startswith("open-")]
    assert titles == ["Who played Corliss Archer\\?"]  # labels are escaped Markdown
    at.button(key=f"open-{conv_id}").click().run()
    assert not at.exception
    md = all_markdown(at)
    # [n] as links with the passage on hover; the source with a non-http URL gets no link
    assert '[\\[1\\]](https://en.wikipedia.org/wiki/Shirley_Temple "Shirley Temple Black was an American actress.")' in md
    assert "[\\[2\\]](http://127.0.0.1:9/wiki/Evil " in md
    # the page title carrying <script> is escaped text, never HTML (rendered by a renderer that lets HTML through)
    assert escape_md(EVIL_TITLE) in md
    html = MarkdownIt("commonmark", {"html": True}).render(md)
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt; Evil" in html
    assert "2014\\-02\\-10" in md  # the source date
    # the short answer above the explanation, in its own box
    assert md.index("### **Shirley Temple**") < md.index("played her")
    assert any("evidence cut to fit" in w.value for w in at.warning)
    assert [s.label for s in at.status][0].startswith("Done: 4.2 s, 1 search, 1 page read")
    assert at.download_button(key=f"export-{done_id}") is not None
    # the unanswered question (the app stopped mid-answer) offers a retry; follow-ups only under the last answer
    assert at.button(key=f"retry-{pending_id}").label == "Retry"
    assert not [b for b in at.button if b.key and b.key.startswith("follow-")]
    assert at.query_params.get("c") in (conv_id, [conv_id])

    at.text_input(key=f"title-{conv_id}").set_value("Corliss <b>Archer</b>").run()
    at.button(key=f"rename-{conv_id}").click().run()
    assert store().conversation(conv_id).title == "Corliss <b>Archer</b>"
    assert at.button(key=f"open-{conv_id}").label == escape_md("Corliss <b>Archer</b>")
    at.button(key=f"delete-{conv_id}").click().run()
    assert not at.exception and store().conversations() == []
    assert "What do you want to know?" in all_markdown(at)


def test_no_short_answer_no_box(ui_env):
    s = store()
    conv = s.new_conversation()
    msg = s.add_question(conv.id, "Who played Corliss Archer?")
    s.set_answer(msg.id, {"answer": "The evidence found did not settle the question.", "citations": [],
                          "settled": False, "short_answer": "", "elapsed_s": 1.0}, [])
    at = app().run()
    at.button(key=f"open-{conv.id}").click().run()
    assert not at.exception
    md = all_markdown(at)
    assert "did not settle" in md and "### **" not in md


def test_upload_a_file_to_answer_from(ui_env):
    at = app().run()
    at.file_uploader[0].set_value(("notes.md", b"# Bees\n\nAnn Smith kept bees in Leeds.", "text/markdown")).run()
    assert not at.exception
    conv = store().conversations()[0]
    (doc,) = store().documents(conv.id)
    assert doc.name == "notes.md" and doc.data.startswith(b"# Bees")
    assert "Answering from" in all_markdown(at)
    at.file_uploader[0].set_value(("broken.pdf", b"%PDF-1.4 this is not really a PDF", "application/pdf")).run()
    assert not at.exception and len(store().documents(conv.id)) == 1
    assert len(at.error) == 1 and "broken" in at.error[0].value, [e.value for e in at.error]
    at.button(key=f"rmdoc-{doc.id}").click().run()
    assert store().documents(conv.id) == []


def test_a_conversation_deleted_in_another_tab(ui_env):
    conv_id, _, _ = stored_conversation(store())
    at = app().run()
    at.button(key=f"open-{conv_id}").click().run()
    store().delete_conversation(conv_id)  # another browser tab deletes it
    at.run()
    assert not at.exception and "deleted" in at.info[0].value
    assert "What do you want to know?" in all_markdown(at) and not at.query_params.get("c")


def test_settings_offer_the_offline_models_and_presets(ui_env):
    at = app().run()
    assert not at.exception
    options = at.selectbox(key="pref_model").options
    assert options[0] == "embedded" and "qwen2.5-1.5b" in options and "qwen3-30b-a3b" in options
