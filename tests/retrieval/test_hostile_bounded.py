"""Kind 5 of issue 15: time and memory bounded on any input. Megabytes of pathological text go through every
extraction path (HTML, plain text, Markdown, JSON, PDF, uploads through the UI's reader, corpus folders) and then
through the passage splitter; each must finish using well under a second of this process's CPU per MB (the
extractor worker, where large pages go, is bounded by the extraction time limit instead, which is also checked).

Quadratic code fails these by orders of magnitude (the old tidy took hours on a few MB of whitespace), so the bound
is generous and measured as CPU time, not wall time, to hold on a busy machine."""

from __future__ import annotations

import json
import time

import pytest

from retrieval import ExtractionError, Page, Reader, RetrievalSettings, UnsupportedContentError
from retrieval.text import tokenize
from tests.retrieval.pathological import MB, html_pages, texts
from tests.retrieval.test_reader import minimal_pdf

SIZE_MB = 2.0
CPU_S_PER_MB = 1.0
LIMIT_S = 1.0  # the extraction time limit in these tests
WALL_SLACK_S = 30.0  # "it finishes": start-up of the worker on a busy machine, never minutes or hours


class Bounded:
    """Runs one extraction and checks its CPU and wall time against the size of its input."""

    def __init__(self, size: int):
        self.mb = max(size / MB, 0.1)

    def __enter__(self):
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        cpu, wall = time.process_time() - self.cpu, time.perf_counter() - self.wall
        assert cpu / self.mb < CPU_S_PER_MB, f"{cpu:.2f} s CPU for {self.mb:.1f} MB"
        assert wall < LIMIT_S + WALL_SLACK_S, f"{wall:.1f} s wall"
        return False


def extract_and_split(reader: Reader, body: bytes, ctype: str) -> None:
    page = Page(url="https://hostile.example/p", requested_url="https://hostile.example/p", status=200,
                content_type=ctype, body=body, headers={})
    try:
        doc = reader.extract(page)
    except (ExtractionError, UnsupportedContentError):
        return  # "no readable text" is a right answer for most of these
    for a, b in reader.passages(doc)[:2000]:
        tokenize(doc.text[a:b])


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader(RetrievalSettings(reader_extract_timeout_s=LIMIT_S))


@pytest.mark.parametrize("name", sorted(texts(0.01)))
@pytest.mark.parametrize("ctype", ["text/plain", "text/markdown"])
def test_text_and_markdown(reader, name, ctype):
    body = texts(SIZE_MB)[name].encode()
    with Bounded(len(body)):
        extract_and_split(reader, body, ctype)


@pytest.mark.parametrize("name", sorted(html_pages(0.01)))
def test_html(reader, name):
    body = html_pages(SIZE_MB)[name].encode()
    with Bounded(len(body)):
        extract_and_split(reader, body, "text/html")


def test_the_tag_stripper_alone_on_every_page():
    from retrieval.pagetext import strip_tags, tidy

    for name, html in html_pages(SIZE_MB).items():
        with Bounded(len(html)):
            tidy(strip_tags(html))


@pytest.mark.parametrize("body", [
    "[" * int(SIZE_MB * MB), '{"a":' * int(SIZE_MB * MB / 5) + "1", json.dumps({"k": " " * int(SIZE_MB * MB)}),
], ids=["deep-array", "deep-object", "whitespace-string"])
def test_json(reader, body):
    with Bounded(len(body)):
        extract_and_split(reader, body.encode(), "application/json")


@pytest.mark.parametrize("lines", [
    ["a"] * 200_000,  # many tiny text operators: the slow case for pypdf
    [" " * 1000] * 2000,
    ["Dr. " * 250] * 2000,
], ids=["many-operators", "spaces", "abbreviations"])
def test_pdf(reader, lines):
    body = minimal_pdf(lines)
    with Bounded(len(body)):
        extract_and_split(reader, body, "application/pdf")


def test_a_slow_extraction_is_stopped_by_the_callers_time_limit(reader):
    """The caller's remaining deadline caps the extraction: a page trafilatura needs seconds for comes back (as
    the stripped text) within about that time."""
    body = html_pages(SIZE_MB)["tiny-paragraphs"].encode()
    page = Page(url="https://hostile.example/p", requested_url="https://hostile.example/p", status=200,
                content_type="text/html", body=body, headers={})
    t0 = time.perf_counter()
    doc = reader.extract(page, timeout_s=0.5)
    assert time.perf_counter() - t0 < 0.5 + WALL_SLACK_S
    assert doc.text.startswith("word word word.")


@pytest.mark.parametrize("name, data", [
    ("spaces.txt", texts(SIZE_MB)["spaces"].encode()),
    ("hashes.md", texts(SIZE_MB)["markdown-hashes"].encode()),
    ("nested.html", html_pages(SIZE_MB)["nested-divs"].encode()),
    ("script.html", html_pages(SIZE_MB)["unclosed-script"].encode()),
    ("operators.pdf", minimal_pdf(["a"] * 200_000)),
])
def test_uploads_through_the_ui_reader(name, data, monkeypatch):
    from ui.documents import to_document
    from ui.errors import ReadError

    monkeypatch.setenv("MOESEARCH_READER_EXTRACT_TIMEOUT_S", str(LIMIT_S))
    with Bounded(len(data)):
        try:
            to_document(data, name)
        except ReadError as e:
            assert "\n" not in str(e)


def test_corpus_folder_of_pathological_files(tmp_path, monkeypatch):
    from retrieval.corpus import load_corpus

    monkeypatch.setenv("MOESEARCH_READER_EXTRACT_TIMEOUT_S", str(LIMIT_S))
    size = 0
    for name, text in list(texts(0.5).items())[:6]:
        (tmp_path / f"{name}.txt").write_text(text)
        size += len(text)
    for name, html in list(html_pages(0.5).items())[:4]:
        (tmp_path / f"{name}.html").write_text(html)
        size += len(html)
    with Bounded(size):
        docs = load_corpus(tmp_path)
    assert docs
