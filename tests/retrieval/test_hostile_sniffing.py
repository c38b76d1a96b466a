"""Kind 4 of issue 15: content decided by its bytes when the header says nothing (WHATWG MIME sniffing, within the
size limit), and pages with no text of their own (a JavaScript notice, a bare title) reported as such."""

from __future__ import annotations

import pytest

from retrieval import ExtractionError, Reader, TooLargeError, UnsupportedContentError
from retrieval.sniff import sniff
from tests.retrieval.conftest import fetch_one, hostile_settings
from tests.retrieval.test_reader import minimal_pdf

PDF = minimal_pdf(["Quokkas are small marsupials that live on Rottnest Island near Perth."], title="Quokkas")
HTML = b"  \n<!DOCTYPE html><html><head><title>Kites</title></head><body><article><p>" + \
       b"The kite festival happens every April on the northern beach, and hundreds of people come. " * 3 + \
       b"</p></article></body></html>"
TEXT = b"Tide tables for the harbour.\n\nHigh water is at 06:12 and 18:40; low water at 00:05 and 12:30.\n"


def read(server, path, body, ctype, **settings):
    s = hostile_settings(server, **settings)
    page = fetch_one(s, server.page(path, body, ctype))
    return Reader(s).extract(page)


@pytest.mark.parametrize("ctype", ["application/octet-stream", None, "binary/octet-stream",
                                   "application/force-download", "unknown/unknown"])
def test_pdf_served_without_a_useful_type_is_read(hostile, ctype):
    doc = read(hostile, "/paper", PDF, ctype)
    assert "Rottnest Island" in doc.text and doc.title == "Quokkas"


@pytest.mark.parametrize("ctype", ["application/octet-stream", None])
def test_html_and_text_served_without_a_useful_type_are_read(hostile, ctype):
    assert "kite festival" in read(hostile, "/kites", HTML, ctype).text
    assert "High water is at 06:12" in read(hostile, "/tides", TEXT, ctype).text


@pytest.mark.parametrize("body, expected", [
    (b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png"), (b"GIF89a" + bytes(100), "image/gif"),
    (b"PK\x03\x04" + bytes(100), "application/zip"), (bytes(range(32)) * 10, "application/octet-stream"),
])
def test_binary_formats_are_refused_by_their_bytes(hostile, body, expected):
    assert sniff(body) == expected
    with pytest.raises(UnsupportedContentError) as e:
        read(hostile, "/blob", body, "application/octet-stream")
    assert "\n" not in str(e.value)


def test_sniffing_stays_within_the_size_limit(hostile):
    big = PDF + b"%" + b"x" * 2_000_000
    with pytest.raises(TooLargeError):
        read(hostile, "/huge.pdf", big, "application/octet-stream", fetch_max_bytes=1_000_000)


@pytest.mark.parametrize("body", [
    # a single-page app: the only text a reader without scripts sees
    "<html><head><title>Dashboard</title></head><body><noscript>You need to enable JavaScript to run this app."
    "</noscript><div id='root'></div><script src='/app.js'></script></body></html>",
    "<html><head><title>Shop</title></head><body><p>Please enable JavaScript in your browser to continue.</p>"
    "</body></html>",
    "<html><head><title>Seite</title></head><body><p>Bitte aktivieren Sie JavaScript, um diese Seite zu sehen.</p>"
    "</body></html>",
    "<html><head><title>Site</title></head><body><p>JavaScript is disabled. Turn it on and reload.</p></body></html>",
    # a bare title
    "<html><head><title>Annual report 2024</title></head><body><h1>Annual report 2024</h1></body></html>",
    "<html><head><title>Loading…</title></head><body></body></html>",
])
def test_pages_without_text_of_their_own_have_no_readable_text(hostile, body):
    with pytest.raises(ExtractionError, match="no readable text"):
        read(hostile, "/spa", body, "text/html")


def test_a_page_about_javascript_is_still_read(hostile):
    body = ("<html><head><title>JS</title></head><body><article><p>JavaScript is a programming language created "
            "by Brendan Eich at Netscape in 1995; you need no plugin to run it in a browser.</p></article></body>"
            "</html>")
    assert "Brendan Eich" in read(hostile, "/js", body, "text/html").text


def test_uploads_are_sniffed_too():
    doc = Reader().document_from_bytes(PDF, "application/octet-stream")
    assert "Rottnest Island" in doc.text
