"""What a body is, from its bytes, as browsers decide it (the WHATWG MIME Sniffing Standard,
https://mimesniff.spec.whatwg.org/, "rules for identifying an unknown MIME type"): used when a server sends no
Content-Type, or one that says nothing (``application/octet-stream``, ``unknown/unknown``, ...). Only the first
1445 bytes (the standard's resource header) are looked at."""

from __future__ import annotations

RESOURCE_HEADER_BYTES = 1445
# Content-Type values that carry no information: the body decides (browsers sniff the first four by the standard;
# octet-stream and the download types are what misconfigured servers send for PDFs and text files).
UNINFORMATIVE_TYPES = frozenset({
    "", "unknown/unknown", "application/unknown", "*/*", "application/octet-stream", "binary/octet-stream",
    "application/x-download", "application/force-download", "application/download",
})
_WS = b"\t\n\x0c\r "
_HTML_TAGS = (b"<!doctype html", b"<html", b"<head", b"<script", b"<iframe", b"<h1", b"<div", b"<font", b"<table",
              b"<a", b"<style", b"<title", b"<b", b"<body", b"<br", b"<p", b"<!--")
_TAG_END = (b" ", b">")
# (signature, MIME type): the standard's tables for documents, images, audio/video, fonts and archives
_BINARY_SIGNATURES = (
    (b"%PDF-", "application/pdf"), (b"%!PS-Adobe-", "application/postscript"),
    (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"), (b"BM", "image/bmp"), (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"OggS\x00", "application/ogg"), (b"ID3", "audio/mpeg"), (b"\x1aE\xdf\xa3", "video/webm"),
    (b"PK\x03\x04", "application/zip"), (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"Rar!\x1a\x07", "application/x-rar-compressed"),
    (b"wOFF", "font/woff"), (b"wOF2", "font/woff2"),
)
_BOMS = (b"\xfe\xff", b"\xff\xfe", b"\xef\xbb\xbf")
_BINARY_BYTES = frozenset(list(range(0x00, 0x09)) + [0x0B] + list(range(0x0E, 0x1B)) + list(range(0x1C, 0x20)))


def _is_html(head: bytes) -> bool:
    s = head.lstrip(_WS).lower()
    for tag in _HTML_TAGS:
        if s.startswith(tag) and s[len(tag):len(tag) + 1] in _TAG_END:
            return True
    return False


def sniff(body: bytes) -> str:
    """The MIME type of ``body`` by the standard's unknown-type rules (scriptable types allowed): HTML or XML by
    their opening markup, PDF and other binary formats by their magic bytes, text when it has a BOM or no binary
    byte, else ``application/octet-stream``."""
    head = body[:RESOURCE_HEADER_BYTES]
    if _is_html(head):
        return "text/html"
    if head.lstrip(_WS).startswith(b"<?xml"):
        return "text/xml"
    for sig, mime in _BINARY_SIGNATURES:
        if head.startswith(sig):
            return mime
    if head.startswith(_BOMS):
        return "text/plain"
    if any(b in _BINARY_BYTES for b in head):
        return "application/octet-stream"
    return "text/plain"


def effective_type(content_type: str, body: bytes) -> str:
    """The type to read ``body`` as: the header's main type, or the sniffed one when the header says nothing."""
    main = (content_type or "").split(";", 1)[0].strip().lower()
    return sniff(body) if main in UNINFORMATIVE_TYPES else main
