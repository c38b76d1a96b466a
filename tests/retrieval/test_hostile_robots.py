"""Kind 2 of issue 15: robots.txt as RFC 9309 says (the longest match wins, Allow wins a tie, `*` and `$`, the most
specific user-agent group; 4xx allows all, 5xx disallows all). A real server's robots.txt, real fetches."""

from __future__ import annotations

import pytest

from retrieval import RobotsDisallowedError
from retrieval.robots import RobotsRules
from tests.retrieval.conftest import fetch_one, hostile_settings

PAGE = "<html><body><article><p>" + "A page with enough words in it to be read as the main text. " * 4 + \
       "</p></article></body></html>"


def outcome(server, path: str) -> str:
    url = server.page(path, PAGE)
    try:
        fetch_one(hostile_settings(server), url)
        return "fetched"
    except RobotsDisallowedError:
        return "refused"


def test_allow_under_a_disallow_all(hostile):
    """The issue's example: `Disallow: /` with `Allow: /public/`."""
    hostile.robots = b"User-agent: *\nDisallow: /\nAllow: /public/\n"
    assert outcome(hostile, "/public/page") == "fetched"
    assert outcome(hostile, "/private/page") == "refused"
    assert outcome(hostile, "/") == "refused"


@pytest.mark.parametrize("robots, path, expected", [
    # longest match wins, whichever order the rules come in
    (b"User-agent: *\nAllow: /docs/\nDisallow: /docs/secret/\n", "/docs/secret/x", "refused"),
    (b"User-agent: *\nDisallow: /docs/secret/\nAllow: /docs/\n", "/docs/readme", "fetched"),
    # Allow wins a tie of equal length
    (b"User-agent: *\nDisallow: /page\nAllow: /page\n", "/page", "fetched"),
    # * matches any run of characters; $ anchors the end
    (b"User-agent: *\nDisallow: /*.pdf$\n", "/files/report.pdf", "refused"),
    (b"User-agent: *\nDisallow: /*.pdf$\n", "/files/report.pdf.html", "fetched"),
    (b"User-agent: *\nDisallow: /*/print\n", "/a/b/print", "refused"),
    # the most specific group applies, not the * group
    (b"User-agent: *\nDisallow: /\n\nUser-agent: moesearch\nAllow: /\n", "/any", "fetched"),
    (b"User-agent: *\nAllow: /\n\nUser-agent: MoeSearch\nDisallow: /no/\n", "/no/x", "refused"),
    # percent-encoding is compared decoded
    (b"User-agent: *\nDisallow: /caf%C3%A9\n", "/caf%c3%a9/menu", "refused"),
])
def test_rfc9309_matching(hostile, robots, path, expected):
    hostile.robots = robots
    assert outcome(hostile, path) == expected


def test_unavailable_robots_allows_and_unreachable_disallows(hostile):
    hostile.robots, hostile.robots_status = b"gone", 404
    assert outcome(hostile, "/a") == "fetched"
    hostile.robots, hostile.robots_status = b"broken", 503
    with pytest.raises(RobotsDisallowedError, match="HTTP 503.*RFC 9309"):
        fetch_one(hostile_settings(hostile), hostile.page("/b", PAGE))


def test_robots_redirect_is_followed(hostile):
    hostile.routes["/robots.txt"] = (301, {"Location": "/real-robots.txt"}, b"")
    hostile.page("/real-robots.txt", "User-agent: *\nDisallow: /hidden\n", "text/plain")
    assert outcome(hostile, "/hidden/a") == "refused"
    assert outcome(hostile, "/shown") == "fetched"


def test_rules_parse_garbage_without_failing():
    rules = RobotsRules.from_response(200, b"\x00\xff<html>not robots</html>\nDisallow /x\n" * 1000)
    assert rules.allows("https://example.org/x")
