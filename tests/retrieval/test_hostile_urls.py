"""Kind 3 of issue 15: every malformed URL or redirect is our own one-line error (``FetchError``; the malformed ones
``InvalidURLError``), never ``httpx.InvalidURL`` or ``UnicodeError``: given to the fetcher, found in a search hit,
or sent as a redirect's Location by a real server; and through `moesearch fetch`."""

from __future__ import annotations

import json

import pytest

from retrieval import BlockedURLError, FetchError, InvalidURLError
from retrieval.fetcher import check_url
from tests.retrieval.attack_urls import MALFORMED, NOT_HTTP, OBFUSCATED_LOOPBACK, REDIRECT_LOCATIONS
from tests.retrieval.conftest import fetch_one, hostile_settings
from tests.retrieval.test_cli import one_line_error, run

PAGE = "<html><body><article><p>" + "A page with enough words in it to be read as the main text. " * 4 + \
       "</p></article></body></html>"


def one_line(e: Exception) -> str:
    text = str(e)
    assert text and "\n" not in text and len(text) < 300, text
    return text


@pytest.mark.parametrize("url", OBFUSCATED_LOOPBACK)
def test_loopback_in_any_notation_is_refused(tmp_data_dir, url):
    with pytest.raises(BlockedURLError) as e:
        fetch_one(hostile_settings_none(), url)
    assert "non-public address" in one_line(e.value)


@pytest.mark.parametrize("url", MALFORMED)
def test_malformed_urls_are_invalid_url_errors(tmp_data_dir, url):
    with pytest.raises(InvalidURLError) as e:
        fetch_one(hostile_settings_none(), url)
    assert one_line(e.value).startswith("blocked: invalid URL")
    assert e.value.exit_code == 2 and e.value.url == url


@pytest.mark.parametrize("url", NOT_HTTP)
def test_other_schemes_are_refused(tmp_data_dir, url):
    with pytest.raises(BlockedURLError) as e:
        fetch_one(hostile_settings_none(), url)
    one_line(e.value)


def test_check_url_gives_what_a_browser_would_request():
    assert check_url("HTTP://Example.COM:80/a b?c d#f") == "http://example.com/a%20b?c%20d#f"
    assert check_url("http://ß.de/x") == "http://xn--zca.de/x"
    assert check_url("/relative", base="https://example.org/dir/page") == "https://example.org/relative"


@pytest.mark.parametrize("location, error", [(loc, BlockedURLError if kind == "blocked" else InvalidURLError)
                                             for loc, kind in REDIRECT_LOCATIONS])
def test_redirect_to_a_bad_location_is_our_error(hostile, location, error):
    url = hostile.page("/jump", b"", None, status=302, Location=location)
    with pytest.raises(error) as e:
        fetch_one(hostile_settings(hostile), url)
    assert one_line(e.value).startswith("redirect to ")


def test_relative_and_scheme_relative_redirects_still_work(hostile):
    hostile.page("/target", PAGE)
    for location in ("/target", "target", "  /target  ", f"//127.0.0.1:{hostile.port}/target"):
        url = hostile.page("/from/jump", b"", None, status=301, Location=location)
        if location == "target":
            hostile.page("/from/target", PAGE)
        page = fetch_one(hostile_settings(hostile), url)
        assert page.status == 200 and page.url.endswith("/target"), location


def test_bad_hit_urls_from_a_search_engine(hostile):
    """A SearXNG-compatible server returns hits with broken URLs: the provider returns them, and fetching each is
    our own error (the agent skips such a hit with a step saying why)."""
    from retrieval.providers import SearxngSearchProvider

    bad = ["http://☃.example/", "javascript:alert(1)", "http://[::1", "http://0177.0.0.1/", "not a url", "", 12,
           "http://example.com:99999/", "http://a:b/", "http://exa mple.com/"]
    results = [{"url": u, "title": f"hit {i}", "content": "snippet"} for i, u in enumerate(bad)]
    hostile.page("/search", json.dumps({"results": results}), "application/json")
    settings = hostile_settings(hostile, searxng_url=hostile.url)
    with SearxngSearchProvider(settings) as provider:
        hits = provider.search("anything", k=20).hits
    # the provider keeps the hits it cannot judge (all but the empty one); the fetcher refuses them
    assert len(hits) == len(bad) - 1
    for h in hits:
        with pytest.raises(FetchError) as e:
            fetch_one(hostile_settings(hostile), h.url)
        one_line(e.value)


@pytest.mark.parametrize("url, code", [("http://0177.0.0.1/", 2), ("http://☃.example/", 2), ("http://[::1", 2)])
def test_fetch_command_gives_one_line(tmp_path, url, code):
    assert "blocked" in one_line_error(run(["fetch", url], tmp_path), code)


def hostile_settings_none():
    """Settings that allow nothing private (the real deny-list)."""
    from retrieval import RetrievalSettings

    return RetrievalSettings(fetch_cache=False, fetch_timeout_connect_s=2.0, fetch_timeout_total_s=5.0,
                             fetch_retries=0)
