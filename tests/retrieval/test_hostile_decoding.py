"""Kind 1 of issue 15: text decoded the way browsers decode it (WHATWG Encoding: BOM, then the HTTP charset, then
<meta>, labels mapped by the standard's table). Pages served over real HTTP, fetched and read end to end."""

from __future__ import annotations

import pytest

from retrieval import Reader
from retrieval.decoding import choose_encoding, decode_body
from tests.retrieval.conftest import fetch_one, hostile_settings

# The example: windows-1252 bytes (0x93 0x94 0x80 0x96 0x92) served as iso-8859-1.
CP1252_BODY = (b"<html><head><title>Shop</title></head><body><article><p>The shop says \x93it is cheap\x94 and sells "
               b"it for 5\x80 \x96 a bargain, or so it\x92s said. The shop is open every day of the week and the staff "
               b"there are friendly to everyone who comes in.</p></article></body></html>")
EXPECTED = "The shop says “it is cheap” and sells it for 5€ – a bargain, or so it’s said."


def read(server, path, body, ctype):
    url = server.page(path, body, ctype)
    page = fetch_one(hostile_settings(server), url)
    return Reader(hostile_settings(server)).extract(page).text


def test_iso_8859_1_label_means_windows_1252(hostile):
    assert EXPECTED in read(hostile, "/latin1", CP1252_BODY, "text/html; charset=iso-8859-1")


@pytest.mark.parametrize("label", ["ISO-8859-1", "latin1", "us-ascii", "l1", "cp819", "x-cp1252"])
def test_other_labels_of_windows_1252(hostile, label):
    assert EXPECTED in read(hostile, "/label", CP1252_BODY, f"text/html; charset={label}")


def test_meta_charset_when_the_header_names_none(hostile):
    body = CP1252_BODY.replace(b"<head>", b'<head><meta http-equiv="Content-Type" content="text/html; '
                                          b'charset=iso-8859-1">')
    assert EXPECTED in read(hostile, "/meta", body, "text/html")


def test_bom_beats_the_header_and_the_meta(hostile):
    text = "<html><head><meta charset='windows-1251'><title>x</title></head><body><article><p>" + \
           "Привет, это страница в кодировке UTF-8 с меткой порядка байтов, и её надо читать как UTF-8. " * 2 + \
           "</p></article></body></html>"
    got = read(hostile, "/bom", b"\xef\xbb\xbf" + text.encode("utf-8"), "text/html; charset=iso-8859-1")
    assert "Привет, это страница" in got


def test_http_charset_beats_meta(hostile):
    text = "<html><head><meta charset='iso-8859-1'></head><body><article><p>" + \
           "Größe und Übermaß: die Straße ist lang, und die Nacht ist kühl und dunkel. " * 2 + \
           "</p></article></body></html>"
    assert "Größe und Übermaß" in read(hostile, "/utf8", text.encode("utf-8"), "text/html; charset=utf-8")


def test_utf16_label_means_little_endian_and_meta_utf16_means_utf8():
    assert choose_encoding(b"", "text/plain; charset=utf-16").name == "utf-16le"
    assert decode_body("héllo".encode("utf-16-le"), "text/plain; charset=utf-16", html=False) == "héllo"
    body = "<meta charset=utf-16><p>héllo</p>".encode("utf-8")
    assert "héllo" in decode_body(body, "text/html")


def test_unknown_label_is_ignored_and_gb2312_reads_as_gbk():
    assert decode_body("naïve".encode("utf-8"), "text/plain; charset=no-such-thing", html=False) == "naïve"
    assert decode_body("中文网页".encode("gb18030"), "text/html; charset=gb2312") == "中文网页"


def test_plain_text_upload_in_a_legacy_charset():
    # no declaration at all: not UTF-8, so detected; the quotes and the euro sign survive
    data = "He said “it costs 5 €” – and left. ".encode("cp1252") * 20
    doc = Reader().document_from_bytes(data, "note.txt")
    assert "“it costs 5 €” –" in doc.text
