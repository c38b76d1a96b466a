"""Page text without a parser: a linear-time tag stripper (the fallback when the extractor finds nothing or runs out
of time), a linear whitespace tidy, and the test for pages that have no text of their own (a "please enable
JavaScript" notice, a bare title). Every function here is one pass over its input: hostile pages (megabytes of
whitespace, thousands of unclosed tags) cost what ordinary ones of the same size cost."""

from __future__ import annotations

import html as htmlmod
import re

_RAW_TEXT = ("script", "style", "noscript", "template", "textarea", "title", "xmp", "iframe", "noembed", "noframes")
_BLOCK = frozenset("address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3 h4 h5 h6 "
                   "header hr li main nav ol p pre section table td th tr ul".split())
_TAG_NAME = re.compile(r"/?([A-Za-z][A-Za-z0-9-]{0,30})")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")  # a run is matched once, at its start: linear
_NEWLINES = re.compile(r"\n{3,}")


def strip_tags(html: str) -> str:
    """The text of an HTML document: tags dropped (block tags become line breaks), script/style/... content and
    comments dropped, entities decoded. O(len(html)) whatever the markup: each position is scanned a bounded number
    of times (a ``<`` without its ``>`` is text, as the HTML tokenizer says)."""
    out: list[str] = []
    n, pos = len(html), 0
    gt = -1  # the next '>' at or after the current '<' (cached: it only moves forward)
    while pos < n:
        lt = html.find("<", pos)
        if lt < 0:
            out.append(html[pos:])
            break
        out.append(html[pos:lt])
        if html.startswith("<!--", lt):
            end = html.find("-->", lt + 4)
            pos = n if end < 0 else end + 3
            continue
        if gt < lt:
            gt = html.find(">", lt)
        if gt < 0:  # no '>' anywhere after: the rest is text
            out.append(html[lt:])
            break
        m = _TAG_NAME.match(html, lt + 1, gt)
        if m is None:  # "<" not starting a tag ("a < b", "<<"): text
            out.append("<")
            pos = lt + 1
            continue
        name = m.group(1).lower()
        closing = html[lt + 1] == "/"
        pos = gt + 1
        if name in _RAW_TEXT and not closing:
            close = re.compile("</" + name, re.I).search(html, pos)  # literal prefix: a linear scan
            pos = n if close is None else close.start()  # the closing tag is consumed as an ordinary tag next
            out.append(" ")
            continue
        out.append("\n" if name in _BLOCK else " ")
    return htmlmod.unescape("".join(out))


def tidy(text: str) -> str:
    """Newlines normalised, NULs removed, spaces at line ends removed, runs of blank lines cut to one: linear."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = "\n".join(line.rstrip(" \t\f\v") for line in text.split("\n"))
    return _NEWLINES.sub("\n\n", text).strip()


def collapse_spaces(text: str) -> str:
    """Runs of spaces and tabs within lines made one space (for the fallback stripper's output)."""
    return _SPACES.sub(" ", text)


# A sentence asking the reader to turn on JavaScript (or cookies) so the page can show itself; in the languages
# most often met. Matched only against short texts, so its cost is bounded.
_NEEDS_SCRIPT = re.compile(
    r"javascript|js\b|\bcookies?\b|脚本|スクリプト",
    re.I)
_ASKS_TO_ENABLE = re.compile(
    r"enabl|activat|turn\w* (?:it )?on|switch\w* (?:it )?on|requir|disabled|not (?:supported|available)|"
    r"unsupported|aktivier|einschalt|activ|habilit|attiv|abilit|włącz|включ|разреш|启用|開啟|开启|有効|켜",
    re.I)
PLACEHOLDER_MAX_CHARS = 600


def is_placeholder(text: str, title: str = "") -> bool:
    """True when ``text`` is no content of its own: empty, only the page's title, or only a short notice asking to
    enable JavaScript/cookies (what a script-rendered page shows a reader that runs no script)."""
    body = " ".join(text.split())
    if not body:
        return True
    if len(body) > PLACEHOLDER_MAX_CHARS:
        return False
    t = " ".join((title or "").split())
    if t and (body == t or body in t):
        return True
    lines = [" ".join(ln.split()) for ln in text.splitlines() if ln.strip()]
    rest = [ln for ln in lines if not (t and ln in t)
            and not (_NEEDS_SCRIPT.search(ln) and _ASKS_TO_ENABLE.search(ln) and len(ln) < 300)]
    return not rest
