"""Pathological page texts for the linear-time tests (issue 15, kind 5): each about ``mb`` megabytes."""

from __future__ import annotations

MB = 1_000_000


def texts(mb: float = 2.0) -> dict[str, str]:
    """Plain texts that once made a regex or a loop quadratic (whitespace runs, markup that never closes, sentence
    ends without end, one endless word)."""
    n = int(mb * MB)
    return {
        "spaces": "a" + " " * n + "b",
        "tabs-and-spaces-then-newline": ("x" + " \t" * 5000 + "\n") * (n // 10_002),
        "newlines": "\n" * n,
        "crlf-blank-lines": "\r\n \r\n\t\r\n" * (n // 7),
        "dots": ". " * (n // 2),
        "abbreviations": "Dr. Mr. St. e.g. " * (n // 16),
        "one-word": "a" * n,
        "exclamations": "!" * n,
        "quotes-after-dot": ('x.' + '"' * 1000 + " ") * (n // 1003),
        "markdown-hashes": ("#" * 1000 + "\n") * (n // 1001),
        "markdown-list": "- " * (n // 2),
        "brackets": "[" * n,
        "numbered": "1. " * (n // 3),
    }


def html_pages(mb: float = 2.0) -> dict[str, str]:
    """HTML that is hard on tag strippers and extractors."""
    n = int(mb * MB)
    return {
        "nested-divs": "<html><body>" + "<div>" * (n // 11) + "text" + "</div>" * (n // 11) + "</body></html>",
        "unclosed-script": "<html><body>" + "<script>x " * (n // 10) + "</body></html>",
        "unclosed-comments": "<html><body>" + "<!--<p>" * (n // 7) + "</body></html>",
        "lt-runs": "<html><body><p>" + "<a" * (n // 2) + "</p></body></html>",
        "unclosed-title": "<html><head>" + "<title>x" * (n // 8) + "</head><body><p>hi</p></body></html>",
        "whitespace-body": "<html><body><p>a" + " " * n + "b</p></body></html>",
        "tiny-paragraphs": "<html><body>" + "<p>word word word.</p>" * (n // 22) + "</body></html>",
        "entities": "<html><body><p>" + "&amp;&#x41;&#65;&nosuch;" * (n // 24) + "</p></body></html>",
        "meta-charsets": "<html><head>" + "<meta charset=" * (n // 14) + "</head><body>x</body></html>",
    }
