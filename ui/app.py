"""The moesearch chat app (Streamlit). Start it with `moesearch ui`.

Layout: the sidebar holds the history (new, open, rename, delete), the pages/files to answer from and the settings;
the main column the conversation. Every answer streams while a live status lists the steps; when done it shows the
text with [n] links, the source cards, warnings, export/copy/regenerate and suggested follow-up questions.
Page content is only ever rendered through ui.render's escaping; nothing here uses unsafe_allow_html.
"""

from __future__ import annotations

import logging
import time

import streamlit as st

from ui.documents import SUFFIXES, check_upload, fetch_url, to_document
from ui.errors import UIError
from ui.prefs import MODEL_EMBEDDED, MODEL_GGUF, MODEL_OPENAI, TIME_RANGES, Prefs, load_prefs
from ui.render import (answer_markdown, escape_block, escape_md, export_markdown, quote_markdown, short_answer_markdown,
                       source_card_markdown, source_line_markdown, summary_label)
from ui.runner import Job, Runner, user_message
from ui.settings import UISettings
from ui.store import Message, Store

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
ss = st.session_state


@st.cache_resource(show_spinner=False)
def get_runner() -> Runner:
    """One runner (background loop, the loaded model, the agent) per process, shared by every browser tab."""
    return Runner()


def presets() -> list[str]:
    """The named models a user can pick: the ones shipped through PyPI (e.g. qwen2.5-1.5b), then the presets."""
    try:
        from model_runtime.registry import PACKAGED, PRESETS

        return [*PACKAGED, *PRESETS]
    except Exception:  # noqa: BLE001
        return []


# state --------------------------------------------------------------------------------------------------------------
def flash(kind: str, text: str) -> None:
    """A message shown once, at the top of the next run."""
    ss.setdefault("flashes", []).append((kind, text))


def open_conversation(conv_id: str | None) -> None:
    ss.conv_id = conv_id
    ss.review = None
    if conv_id:
        st.query_params["c"] = conv_id
    else:
        st.query_params.clear()


def init_state(store: Store) -> None:
    if "conv_id" not in ss:
        cid = st.query_params.get("c")
        ss.conv_id = cid if cid and any(c.id == cid for c in store.conversations()) else None
    elif ss.conv_id and not any(c.id == ss.conv_id for c in store.conversations()):
        flash("info", "This conversation was deleted (in another tab); ask to start a new one.")
        open_conversation(None)
    ss.setdefault("review", None)  # {msg_id, question, subs} while a plan waits for the user
    ss.setdefault("action", None)  # what a click asked for, done after the page is drawn
    ss.setdefault("upload_nonce", 0)


def ensure_conversation(store: Store) -> str:
    if not ss.conv_id:
        open_conversation(store.new_conversation().id)
    return ss.conv_id


# sidebar ------------------------------------------------------------------------------------------------------------
def sidebar_history(store: Store) -> None:
    if st.button("New chat", icon=":material/add:", width="stretch", key="new_chat"):
        open_conversation(None)
        st.rerun()
    convs = store.conversations()
    st.markdown("**History**")
    if not convs:
        st.caption("Your conversations will be listed here.")
    for conv in convs[:100]:
        current = conv.id == ss.conv_id
        if st.button(escape_md(conv.title), key=f"open-{conv.id}", width="stretch",
                     type="primary" if current else "secondary"):
            open_conversation(conv.id)
            st.rerun()
    if ss.conv_id and any(c.id == ss.conv_id for c in convs):
        conv = next(c for c in convs if c.id == ss.conv_id)
        with st.expander("This conversation"):
            key = f"title-{conv.id}"
            ss.setdefault(key, conv.title)
            st.text_input("Title", key=key)
            c1, c2 = st.columns(2)
            if c1.button("Rename", key=f"rename-{conv.id}", width="stretch"):
                store.rename(conv.id, ss[key])
                st.rerun()
            if c2.button("Delete", key=f"delete-{conv.id}", width="stretch"):
                store.delete_conversation(conv.id)
                ss.pop(key, None)
                open_conversation(None)
                flash("info", "Conversation deleted.")
                st.rerun()


def sidebar_reading(store: Store, prefs: Prefs, settings: UISettings) -> None:
    with st.expander("Read a page or a file"):
        st.caption("Answers in this conversation then come from what you add here.")
        with st.form("read-url", clear_on_submit=True, border=False):
            url = st.text_input("Page URL", placeholder="https://example.org/article", key="read_url")
            go = st.form_submit_button("Read page")
        if go and url.strip():
            try:
                body, ctype, final = get_runner().call(fetch_url, url.strip(), prefs.retrieval_settings_overrides())
                doc = to_document(body, ctype, url=final)
                store.add_document(ensure_conversation(store), url.strip(), body, url=final, content_type=ctype,
                                   title=doc.title or final)
                flash("success", f"Read {escape_md(doc.title or final)}")
            except Exception as e:  # noqa: BLE001
                flash("error", escape_md(user_message(e)))
            st.rerun()
        up = st.file_uploader("Upload a file (HTML, text, Markdown, PDF)", key=f"upload-{ss.upload_nonce}",
                              type=sorted(s.lstrip(".") for s in SUFFIXES))
        if up is not None:
            ss.upload_nonce += 1
            try:
                data = up.getvalue()
                check_upload(up.name, data, settings.ui_max_upload_mb)
                doc = to_document(data, up.name, url=None)
                store.add_document(ensure_conversation(store), up.name, data, title=doc.title or up.name)
                # no content type: browsers send application/octet-stream for .md; the file name says more
                flash("success", f"Read {escape_md(up.name)}")
            except Exception as e:  # noqa: BLE001
                flash("error", escape_md(user_message(e)))
            st.rerun()


PREF_KEYS = {f: f"pref_{f}" for f in Prefs.model_fields}


def sidebar_settings(store: Store, prefs: Prefs) -> Prefs:
    for field, key in PREF_KEYS.items():
        if key not in ss:
            ss[key] = getattr(prefs, field)
    with st.expander("Settings", expanded=False):
        models = [MODEL_EMBEDDED, *presets(), MODEL_GGUF, MODEL_OPENAI]
        if ss.pref_model not in models:
            ss.pref_model = MODEL_EMBEDDED
        st.selectbox("Model", models, key="pref_model",
                     help="embedded: Gemma 3 270M, offline. qwen2.5-1.5b: better answers, slower; needs "
                          "`moesearch model install qwen2.5-1.5b` first. Presets need `moesearch model pull NAME` first.")
        if ss.pref_model == MODEL_GGUF:
            st.text_input("GGUF file", key="pref_gguf_path", placeholder="/models/model.gguf")
        if ss.pref_model == MODEL_OPENAI:
            st.text_input("Server URL", key="pref_openai_url", help="base URL, e.g. http://127.0.0.1:8080/v1")
        st.radio("Search", ["local", "searxng"], key="pref_provider", horizontal=True,
                 format_func=lambda p: {"local": "Local corpus", "searxng": "SearXNG"}[p])
        if ss.pref_provider == "searxng":
            st.text_input("SearXNG URL", key="pref_searxng_url")
        st.selectbox("Time range", TIME_RANGES, key="pref_time_range")
        st.radio("Mode", ["quick", "deep"], key="pref_mode", horizontal=True,
                 help="quick: one round of searching; deep: plan, search, reflect, search again")
        if ss.pref_mode == "deep":
            st.number_input("Rounds", 1, 6, key="pref_rounds")
        st.number_input("Most searches", 1, 50, key="pref_max_searches")
        st.number_input("Most pages read", 0, 50, key="pref_max_pages")
        st.number_input("Most answer tokens", 16, 4096, step=64, key="pref_answer_tokens")
        st.number_input("Deadline (seconds)", 1.0, 3600.0, step=30.0, key="pref_deadline_s")
        st.toggle("Review the plan before searching", key="pref_review_plan")
    try:
        new = Prefs.model_validate({f: ss[k] for f, k in PREF_KEYS.items()})
    except Exception:  # noqa: BLE001 - a value out of range: keep the stored settings
        return prefs
    if new != prefs:
        store.put_settings({"prefs": new.model_dump()})
    return new


# messages -----------------------------------------------------------------------------------------------------------
def follow(job: Job) -> None:
    """Show a running answer live: steps in a status box, tokens as they stream; then redraw the stored answer."""
    status = st.status("Waiting for the previous question to finish…" if not job.started else "Working…",
                       expanded=True)
    text_box = st.empty()
    shown, text, started = 0, None, job.started
    while True:
        finished = job.done.is_set()
        if job.started and not started:
            status.update(label="Working…", expanded=True)
            started = True
        steps = list(job.steps)
        for line in steps[shown:]:
            status.markdown(line)
        shown = len(steps)
        if job.text != text:
            if not text:
                status.update(label="Writing the answer…", expanded=True)
            text = job.text
            text_box.markdown(answer_markdown(text) + " ▌")
        if finished:
            break
        time.sleep(0.1)
    status.update(label=summary_label(job.view, job.steps) if job.view else "Stopped",
                  state="complete" if job.view else "error", expanded=False)
    st.rerun()


def ask(store: Store, runner: Runner, prefs: Prefs, question: str, *, msg_id: int | None = None,
        plan: list[str] | None = None, review: bool = True) -> None:
    """Store the question (or reset the one to retry), then start the agent on it, or plan it for review first.
    plan: the reviewed sub-questions (the question itself is always searched too); None lets the agent plan."""
    question = question.strip()
    if not question:
        flash("warning", "The question is empty; type something to ask.")
        return
    conv_id = ensure_conversation(store)
    if msg_id is None:
        msg_id = store.add_question(conv_id, question).id
    else:
        store.set_pending(msg_id)
    history = store.history(conv_id, before=msg_id)
    if prefs.review_plan and review and plan is None:
        try:
            with st.spinner("Planning…"):
                subs = runner.plan(question, prefs, history)
            ss.review = {"msg_id": msg_id, "question": question,
                         "subs": [str(s.get("question", s)) if isinstance(s, dict) else str(s) for s in subs]}
        except Exception as e:  # noqa: BLE001
            store.set_error(msg_id, user_message(e))
        return
    docs = [(d.data, d.content_type or d.name, d.url) for d in store.documents(conv_id)]
    loader = (lambda: [to_document(data, kind, url=url) for data, kind, url in docs]) if docs else None
    runner.submit(store, msg_id, question, prefs, history=history, documents=loader, plan=plan)


def review_form(msg: Message) -> None:
    review = ss.review
    with st.form(f"review-{msg.id}", border=True):
        st.markdown("**Review the plan**: edit, remove or add sub\\-questions \\(one per line\\), then search. "
                    "The question itself is always searched too.")
        st.text_area("Sub-questions", value="\n".join(review["subs"]), key=f"plan-{msg.id}", height=140)
        c1, c2 = st.columns(2)
        go = c1.form_submit_button("Search with this plan", type="primary")
        auto = c2.form_submit_button("Let the agent plan")
    if go or auto:
        subs = [s.strip() for s in (ss.get(f"plan-{msg.id}") or "").splitlines() if s.strip()]
        ss.review = None
        ss.action = {"kind": "ask", "question": msg.question, "msg_id": msg.id, "plan": subs if go else None,
                     "review": False}
        st.rerun()


def render_answer(store: Store, msg: Message, last: bool) -> None:
    view = msg.answer_dict or {}
    steps = msg.step_list
    with st.status(summary_label(view, steps), state="complete", expanded=False):
        for line in steps or ["No steps recorded."]:
            st.markdown(line)
    for w in view.get("warnings") or []:
        st.warning(escape_md(w), icon=":material/warning:")
    short = short_answer_markdown(view.get("short_answer"))
    if short:  # a featured answer above the explanation; no box at all when there is none
        with st.container(border=True, key=f"short-answer-{msg.id}"):
            st.markdown(f"### {short}")
    st.markdown(answer_markdown(view.get("answer", ""), view.get("citations")))
    if view.get("settled") is False:
        st.caption("The evidence found did not settle this question.")
    cits = view.get("citations") or []
    if cits:
        st.markdown("**Sources**")
        for c in cits:
            with st.container(border=True):
                st.markdown(source_card_markdown(c))
                if c.get("quote"):
                    with st.expander("Supporting passage"):
                        st.markdown(quote_markdown(c["quote"]))
    cited = {c.get("url") for c in cits}
    others = [s for s in view.get("sources") or [] if s.get("url") not in cited]
    if others:
        with st.expander(f"Also read ({len(others)})"):
            st.markdown("\n".join(source_line_markdown(s) for s in others))
    md = export_markdown(msg.question, view)
    c1, c2, c3 = st.columns([1, 1, 1])
    c1.download_button("Export Markdown", md, file_name=f"moesearch-answer-{msg.id}.md", mime="text/markdown",
                       key=f"export-{msg.id}", icon=":material/download:", width="stretch", on_click="ignore")
    if c2.button("Regenerate", key=f"regen-{msg.id}", icon=":material/refresh:", width="stretch"):
        ss.action = {"kind": "ask", "question": msg.question, "msg_id": msg.id}
        st.rerun()
    with c3.popover("Copy", icon=":material/content_copy:", width="stretch"):
        st.caption("Answer text")
        st.code(view.get("answer", ""), language=None, wrap_lines=True)
        st.caption("Answer with sources (Markdown)")
        st.code(md, language="markdown", wrap_lines=True)
    follow_ups = view.get("follow_ups") or []
    if follow_ups and last:
        st.caption("Ask next")
        for i, q in enumerate(follow_ups[:3]):
            if st.button(escape_md(q), key=f"follow-{msg.id}-{i}", icon=":material/subdirectory_arrow_right:"):
                ss.action = {"kind": "ask", "question": q}
                st.rerun()


def render_message(store: Store, runner: Runner, msg: Message, last: bool) -> None:
    with st.chat_message("user"):
        st.markdown(escape_block(msg.question))
    with st.chat_message("assistant"):
        job = runner.job(store, msg.id)
        if msg.status == "pending" and job is not None:
            if not job.done.is_set():
                follow(job)  # ends with a rerun
            msg = store.message(msg.id) or msg  # it finished after the list of messages was read
        if msg.status == "pending" and ss.review and ss.review.get("msg_id") == msg.id:
            review_form(msg)
        elif msg.status == "pending":
            st.info("This question has no answer yet: the app stopped before it was answered.")
            if st.button("Retry", key=f"retry-{msg.id}", icon=":material/refresh:"):
                ss.action = {"kind": "ask", "question": msg.question, "msg_id": msg.id}
                st.rerun()
        elif msg.status == "error":
            st.error(escape_md(msg.error or "the agent stopped with an error"), icon=":material/error:")
            for line in msg.step_list:
                st.caption(line)
            if st.button("Retry", key=f"retry-{msg.id}", icon=":material/refresh:"):
                ss.action = {"kind": "ask", "question": msg.question, "msg_id": msg.id}
                st.rerun()
        else:
            render_answer(store, msg, last)


def documents_bar(store: Store) -> None:
    if not ss.conv_id:
        return
    docs = store.documents(ss.conv_id)
    if not docs:
        return
    with st.container(border=True):
        st.markdown("**Answering from**")
        for d in docs:
            c1, c2 = st.columns([5, 1])
            c1.markdown(f":material/description: {escape_md(d.title or d.name)}")
            if c2.button("Remove", key=f"rmdoc-{d.id}"):
                store.remove_document(d.id)
                st.rerun()


# page ---------------------------------------------------------------------------------------------------------------
def main() -> None:
    st.set_page_config(page_title="moesearch", page_icon=":material/travel_explore:", layout="centered")
    settings = UISettings()
    store = Store(settings.db)
    runner = get_runner()
    init_state(store)
    prefs = load_prefs(store.settings())

    with st.sidebar:
        st.markdown("### moesearch")
        sidebar_history(store)
        sidebar_reading(store, prefs, settings)
        prefs = sidebar_settings(store, prefs)

    for kind, text in ss.pop("flashes", []):
        getattr(st, kind)(text)

    messages = store.messages(ss.conv_id) if ss.conv_id else []
    if not messages:
        st.markdown("## What do you want to know?")
        st.caption("moesearch searches, reads and answers with citations, on your machine.")
    documents_bar(store)
    for i, msg in enumerate(messages):
        render_message(store, runner, msg, last=i == len(messages) - 1)

    question = st.chat_input("Ask anything")
    action = ss.action
    ss.action = None
    if question:
        action = {"kind": "ask", "question": question}
    if action:
        try:
            ask(store, runner, prefs, action["question"], msg_id=action.get("msg_id"), plan=action.get("plan"),
                review=action.get("review", True))
        except UIError as e:
            flash("error", escape_md(str(e)))
        st.rerun()


def run() -> None:
    """The page; any error becomes one clear message and the next click works again."""
    try:
        main()
    except Exception as e:  # noqa: BLE001 - Streamlit's rerun/stop signals are BaseExceptions and pass through
        st.error(escape_md(user_message(e)), icon=":material/error:")


run()
