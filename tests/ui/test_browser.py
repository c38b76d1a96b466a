"""The app in a real browser: `moesearch ui` on 127.0.0.1, Debian's chromium driven by Playwright.

Asks a HotpotQA dev question on the embedded defaults, waits for the streamed answer, checks a citation link and its
source card, reloads and opens the conversation from the history, and checks that a page whose title carries
<script> shows as text. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port
from tests.ui.conftest import ARTIFACTS, EVIL_TITLE, SAMPLE

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
ANSWER_TIMEOUT_MS = 840_000  # the first question builds the corpus index; the model is ~40 tok/s on 2 busy cores

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium not installed: run ./setup.sh as root, "
                                "or sudo apt-get install chromium")


class UIServer:
    """`moesearch ui` in a subprocess on a free port of 127.0.0.1; stopped by the test."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log_path = env, log
        self.url = ""
        self.proc: subprocess.Popen | None = None

    def start(self) -> "UIServer":
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.log_path.open("a")
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "ui", "--port", str(self.port)], cwd=ROOT,
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(self.url + "/_stcore/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("moesearch ui did not start:\n" + self.log_path.read_text()[-3000:])
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()
            if os.environ.get("MOESEARCH_UI_TEST_LOG"):
                print(self.log_path.read_text()[-5000:])


@pytest.fixture
def ui_server(ui_env, evil_web, tmp_path):
    env = dict(os.environ) | ui_env | {"MOESEARCH_FETCH_ALLOW_HOSTS": f"127.0.0.1:{evil_web.port}"}
    server = UIServer(env, tmp_path / "ui.log").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        try:
            yield pg
        finally:
            context.close()
            browser.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"ui-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_ask_cite_reload_history_and_script_title(ui_server, evil_web, page):
    from playwright.sync_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(ui_server)
    chat = page.get_by_placeholder("Ask anything")
    expect(chat).to_be_visible(timeout=60_000)

    # ask; the answer streams; when done the export button appears under it
    chat.fill(SAMPLE)
    chat.press("Enter")
    messages = page.get_by_test_id("stChatMessage")
    expect(messages.first).to_contain_text("Corliss Archer")
    # while the agent works: a live status with the steps, then the answer streaming in (a cursor at its end)
    export = messages.nth(1).get_by_test_id("stDownloadButton")
    seen = {"steps": False, "streaming": False}
    deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000
    while not export.count() and time.monotonic() < deadline:
        if messages.count() > 1:
            text = messages.nth(1).inner_text()
            seen["steps"] |= "Search" in text and "Done:" not in text  # steps shown before the status collapses
            seen["streaming"] |= "▌" in text
        page.wait_for_timeout(150)
    expect(export).to_be_visible()
    assert seen["steps"] and seen["streaming"], seen
    answer = messages.nth(1)

    # a citation [n] is a link to its source, whose passage shows on hover (the link's title); the source card
    # links the same page and shows that passage when expanded; the steps are collapsed under "Done: ..."
    cite = answer.locator("a").filter(has_text=re.compile(r"^\[\d+\]$")).first
    expect(cite).to_be_visible()
    href = cite.get_attribute("href")
    assert href and href.startswith(("http://", "https://")), href
    passage = (cite.get_attribute("title") or "").rstrip("…").strip()
    assert passage, "hovering a citation shows its passage"
    expect(answer.get_by_text("Sources", exact=True)).to_be_visible()
    assert answer.locator(f'a[href="{href}"]').count() >= 2  # the [n] link and the source card's title
    card = answer.get_by_test_id("stExpander").filter(has_text="Supporting passage").first
    card.get_by_text("Supporting passage").click()
    expect(card.get_by_text(passage[:40]).first).to_be_visible()
    expect(answer.get_by_text("Done:")).to_be_visible()
    shot(page, "answer")

    # export: the answer with its sources as a Markdown file
    with page.expect_download() as download:
        export.click()
    exported = Path(download.value.path()).read_text()
    assert exported.startswith("# What government position") and "## Sources" in exported and href in exported

    # reload: the conversation is in the history; open it from there
    page.reload()
    expect(page.get_by_placeholder("Ask anything")).to_be_visible(timeout=60_000)
    page.get_by_test_id("stSidebar").get_by_role("button", name="New chat").click()
    expect(page.get_by_text("What do you want to know?")).to_be_visible()
    page.get_by_test_id("stSidebar").get_by_role("button", name="What government position").click()
    expect(page.get_by_test_id("stDownloadButton")).to_be_visible()
    expect(page.get_by_test_id("stChatMessage").nth(1).locator(f'a[href="{href}"]').first).to_be_visible()
    shot(page, "history")

    # read a page whose title carries <script>: the title shows as text, nothing runs
    page.get_by_test_id("stSidebar").get_by_text("Read a page or a file").click()
    page.get_by_label("Page URL").fill(evil_web.doc_url(evil_web.docs[0]))
    page.get_by_role("button", name="Read page").click()
    expect(page.get_by_text("Answering from")).to_be_visible(timeout=60_000)
    shown = page.get_by_text('<script>window.__pwned=1</script> Evil <img src=x onerror="window.__pwned=2"> page')
    expect(shown.first).to_be_visible()
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible()  # the page is drawn again
    shown.first.scroll_into_view_if_needed()
    shot(page, "script-title")

    # ask about it: the answer comes from that page, whose title shows as text on its source card
    page.get_by_placeholder("Ask anything").fill("What is the secret number on the Evil page?")
    page.get_by_placeholder("Ask anything").press("Enter")
    answer2 = page.get_by_test_id("stChatMessage").nth(3)
    expect(answer2.get_by_text("Done:")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(answer2.get_by_test_id("stDownloadButton")).to_be_visible()
    also = answer2.get_by_text("Also read")
    if also.count():  # read but not cited: listed under "Also read"
        also.click()
    evil_url = evil_web.doc_url(evil_web.docs[0])
    title_link = answer2.locator(f'a[href="{evil_url}"]').filter(has_text=EVIL_TITLE).first
    expect(title_link).to_be_visible()
    title_link.scroll_into_view_if_needed()
    shot(page, "script-title-source")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src='x']").count() == 0
    assert not errors, errors


def test_a_restart_mid_answer_loses_nothing(ui_env, tmp_path, page):
    """The question is stored before the agent starts: stop the app while it answers, start it again, and the
    question is still in the history, unanswered, with a retry."""
    from playwright.sync_api import expect

    server = UIServer(dict(os.environ) | ui_env, tmp_path / "ui.log").start()
    try:
        page.goto(server.url)
        chat = page.get_by_placeholder("Ask anything")
        chat.fill(SAMPLE)
        chat.press("Enter")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_be_visible()  # the agent is at work
    finally:
        server.stop()
    server.start()  # the same data folder and database
    try:
        page.goto(server.url)
        page.get_by_test_id("stSidebar").get_by_role("button", name="What government position").click()
        expect(page.get_by_test_id("stChatMessage").first).to_contain_text("Corliss Archer")
        expect(page.get_by_text("This question has no answer yet")).to_be_visible()
        expect(page.get_by_role("button", name="Retry")).to_be_visible()
        shot(page, "restart")
    finally:
        server.stop()
