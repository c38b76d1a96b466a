"""Bytes to text the way browsers do it (the WHATWG Encoding Standard, https://encoding.spec.whatwg.org/, and the
HTML "determining the character encoding" steps): a byte-order mark first, then the HTTP ``charset``, then a
``<meta>`` declaration (HTML only), then detection. Labels are mapped by the standard's table through the
``webencodings`` package, so ``iso-8859-1``, ``latin1`` and ``us-ascii`` mean windows-1252, ``utf-16`` means
UTF-16LE, ``gb2312`` means GBK, and an unknown label is ignored. Undecodable bytes become U+FFFD, never vanish."""

from __future__ import annotations

import re

import webencodings

from .errors import UnsupportedContentError

_HTTP_CHARSET = re.compile(r"""charset\s*=\s*["']?([^\s"';,]{1,40})""", re.I)
# <meta charset=x> and <meta http-equiv=content-type content="...; charset=x">; bounded repeats keep it linear
_META_CHARSET = re.compile(rb"""<meta\b[^<>]{0,512}?charset\s*=\s*["']?([^\s"'<>/;]{1,40})""", re.I)
PRESCAN_BYTES = 1024  # HTML: "prescan a byte stream" looks at the first 1024 bytes
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def _lookup(label: str | bytes | None) -> webencodings.Encoding | None:
    if not label:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "ignore")
    return webencodings.lookup(label)


def http_charset(content_type: str) -> webencodings.Encoding | None:
    """The encoding a Content-Type header names, as browsers read its label (None: none or unknown)."""
    m = _HTTP_CHARSET.search(content_type or "")
    return _lookup(m.group(1)) if m else None


def meta_charset(body: bytes) -> webencodings.Encoding | None:
    """The encoding a ``<meta>`` in the first 1024 bytes declares; a UTF-16 declaration means UTF-8 there (a page
    that could be read as ASCII to find the tag is not UTF-16), as the HTML standard says."""
    m = _META_CHARSET.search(body[:PRESCAN_BYTES])
    enc = _lookup(m.group(1)) if m else None
    if enc is not None and enc.name in ("utf-16le", "utf-16be"):
        return webencodings.UTF8
    if enc is not None and enc.name == "x-user-defined":
        return webencodings.lookup("windows-1252")
    return enc


def _detect(body: bytes) -> webencodings.Encoding:
    """No declaration: UTF-8 when the bytes are valid UTF-8, else a detector's guess, else windows-1252 (the
    standard's default for most locales)."""
    try:
        body.decode("utf-8")
        return webencodings.UTF8
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(body[:200_000]).best()
        enc = _lookup(best.encoding) if best is not None and best.encoding else None
        if enc is not None:
            return enc
    except ImportError:  # pragma: no cover
        pass
    return webencodings.lookup("windows-1252")


def _is_binary(body: bytes) -> bool:
    return b"\x00" in body[:8192] and not body.startswith(_BOMS[1:])


def choose_encoding(body: bytes, content_type: str = "", html: bool = True) -> webencodings.Encoding:
    """The encoding to decode ``body`` with, a BOM aside (``decode_body`` lets a BOM override it)."""
    return http_charset(content_type) or (meta_charset(body) if html else None) or _detect(body)


def decode_body(body: bytes, content_type: str = "", html: bool = True) -> str:
    """The text of a body, decoded as a browser would (see the module docstring). Raises
    ``UnsupportedContentError`` for binary data (NUL bytes, unless UTF-16 by its BOM or its header)."""
    encoding = choose_encoding(body, content_type, html)
    if _is_binary(body) and encoding.name not in ("utf-16le", "utf-16be"):
        raise UnsupportedContentError("binary content, not text")
    if encoding.name == "gbk":  # the standard's GBK decoder is the gb18030 decoder
        encoding = webencodings.lookup("gb18030")
    text, _ = webencodings.decode(body, encoding, errors="replace")
    return text
