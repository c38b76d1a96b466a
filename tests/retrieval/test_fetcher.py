"""The fetcher against real HTTP servers on 127.0.0.1: limits, SSRF guard, redirects, timeouts, retries, cache."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from retrieval import (BlockedURLError, Fetcher, FetchTimeoutError, HTTPStatusError, RetrievalSettings,
                       RobotsDisallowedError, TooLargeError, TooManyRedirectsError, UnsupportedContentError)
from retrieval.fetcher import ip_is_forbidden
from tests.conftest import free_port


def fetch(settings, url, cache=None):
    async def go():
        async with Fetcher(settings, cache=cache) as f:
            return await f.fetch(url)

    return asyncio.run(go())


@pytest.fixture
def allowed(tmp_data_dir, fault_server) -> RetrievalSettings:
    """The fault server is explicitly allowed (like the local web); small limits so tests stay quick."""
    return RetrievalSettings(fetch_allow_hosts=[f"127.0.0.1:{fault_server.port}"], fetch_max_bytes=1_000_000,
                             fetch_timeout_read_s=1.0, fetch_timeout_total_s=5.0, fetch_backoff_s=0.05)


def test_fetches_a_page(allowed, fault_server):
    page = fetch(allowed, fault_server.url + "/ok")
    assert page.status == 200 and page.content_type.startswith("text/html")
    assert b"Plain words" in page.body and not page.from_cache
    assert page.url == page.requested_url == fault_server.url + "/ok"


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.org/x", "gopher://127.0.0.1/", "javascript:alert(1)", "data:text/html,hi",
    "http://127.0.0.1:9/", "http://10.0.0.1/", "http://192.168.1.1/admin", "http://169.254.169.254/latest/meta-data",
    "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[fe80::1]/", "http://224.0.0.1/", "http://0.0.0.0/",
    "http://100.64.0.1/", "not a url", "",
])
def test_ssrf_guard_refuses_bad_schemes_and_private_addresses(settings, url):
    with pytest.raises(BlockedURLError) as e:
        fetch(settings, url)
    assert str(e.value).startswith("blocked") and "\n" not in str(e.value)


def test_hostname_resolving_to_loopback_is_refused_at_connect(settings, fault_server):
    # "localhost" is not an IP literal: the guard resolves it and refuses the loopback address it would connect to
    with pytest.raises(BlockedURLError, match="non-public address"):
        fetch(settings, f"http://localhost:{fault_server.port}/ok")


def test_real_loopback_server_refused_unless_allowlisted(settings, fault_server):
    with pytest.raises(BlockedURLError):
        fetch(settings, fault_server.url + "/ok")
    ok = RetrievalSettings(fetch_allow_hosts=[f"127.0.0.1:{fault_server.port}"])
    assert fetch(ok, fault_server.url + "/ok").status == 200


def test_searxng_origin_is_allowed(tmp_data_dir, fault_server):
    s = RetrievalSettings(searxng_url=fault_server.url)
    assert fetch(s, fault_server.url + "/ok").status == 200
    # another port on the same host is still refused
    with pytest.raises(BlockedURLError):
        fetch(s, f"http://127.0.0.1:{free_port()}/ok")


def test_redirect_from_allowed_host_to_private_one_is_blocked(allowed, fault_server):
    other = free_port()
    for target in (f"http://localhost:{fault_server.port}/ok", f"http://127.0.0.1:{other}/", "http://169.254.169.254/",
                   "file:///etc/passwd"):
        with pytest.raises(BlockedURLError):
            fetch(allowed, fault_server.url + "/redirect-to?url=" + target)


def test_redirects_followed_and_limited(allowed, fault_server):
    page = fetch(allowed, fault_server.url + "/redirect/3")
    assert page.url == fault_server.url + "/ok" and page.requested_url.endswith("/redirect/3")
    with pytest.raises(TooManyRedirectsError, match="more than 5 redirects"):
        fetch(allowed, fault_server.url + "/redirect/9")
    with pytest.raises(TooManyRedirectsError, match="redirect"):
        fetch(allowed, fault_server.url + "/loop")


def test_too_large_body_is_cut_while_streaming(allowed, fault_server):
    with pytest.raises(TooLargeError, match="larger than"):
        fetch(allowed, fault_server.url + "/big")
    with pytest.raises(TooLargeError):
        fetch(allowed, fault_server.url + "/big-chunked")


def test_gzip_bomb_stops_at_the_decompressed_limit(allowed, fault_server):
    with pytest.raises(TooLargeError, match="decompressed"):
        fetch(allowed, fault_server.url + "/gzip-bomb")
    page = fetch(allowed, fault_server.url + "/gzip-ok")
    assert b"Plain words" in page.body


def test_read_timeout_and_total_timeout(allowed, fault_server):
    with pytest.raises(FetchTimeoutError, match="read timeout"):
        fetch(allowed, fault_server.url + "/slow?s=3")
    total = allowed.model_copy(update={"fetch_timeout_total_s": 1.0})
    t0 = time.monotonic()
    with pytest.raises(FetchTimeoutError, match="total timeout"):
        fetch(total, fault_server.url + "/drip")
    assert time.monotonic() - t0 < 4


def test_per_host_concurrency_limit(allowed, fault_server):
    s = allowed.model_copy(update={"fetch_per_host_concurrency": 2, "fetch_max_concurrency": 16})
    fault_server.max_inflight = 0

    async def go():
        async with Fetcher(s, cache=False) as f:
            return await f.fetch_many([fault_server.url + f"/concurrent?i={i}" for i in range(6)])

    pages = asyncio.run(go())
    assert all(p.status == 200 for p in pages)
    assert fault_server.max_inflight == 2


def test_retry_after_on_503_then_success(allowed, fault_server):
    page = fetch(allowed, fault_server.url + "/flaky")
    assert page.status == 200 and fault_server.hits["/flaky"] == 2


def test_http_errors_and_content_types(allowed, fault_server):
    with pytest.raises(HTTPStatusError, match="HTTP 404") as e:
        fetch(allowed, fault_server.url + "/404")
    assert e.value.status == 404
    with pytest.raises(HTTPStatusError, match="HTTP 500"):
        fetch(allowed.model_copy(update={"fetch_retries": 0}), fault_server.url + "/500")
    with pytest.raises(UnsupportedContentError, match="application/octet-stream"):
        fetch(allowed, fault_server.url + "/binary")
    with pytest.raises(UnsupportedContentError, match="binary"):
        fetch(allowed, fault_server.url + "/no-type")


def test_robots_txt_is_honoured(allowed, fault_server):
    with pytest.raises(RobotsDisallowedError, match="robots.txt"):
        fetch(allowed, fault_server.url + "/private")
    assert fetch(allowed.model_copy(update={"fetch_respect_robots": False}), fault_server.url + "/private").status == 200


def test_cache_serves_second_fetch_and_revalidates(allowed, fault_server):
    first = fetch(allowed, fault_server.url + "/ok?cache=1")
    second = fetch(allowed, fault_server.url + "/ok?cache=1")
    assert not first.from_cache and second.from_cache and second.body == first.body
    assert fault_server.hits["/ok"] >= 1
    # an expired entry with an ETag is revalidated: the server answers 304 and the cached body is used
    stale = allowed.model_copy(update={"cache_ttl_s": 0})
    fetch(stale, fault_server.url + "/etag")
    again = fetch(stale, fault_server.url + "/etag")
    assert again.from_cache and b"Plain words" in again.body and fault_server.hits["/etag"] == 2


def test_ip_classification():
    import ipaddress

    for a in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.169.254", "::1", "fc00::1",
              "::ffff:10.0.0.1", "2002:7f00:1::", "224.0.0.1", "255.255.255.255", "0.0.0.0"):
        assert ip_is_forbidden(ipaddress.ip_address(a)), a
    for a in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34"):
        assert not ip_is_forbidden(ipaddress.ip_address(a)), a


def test_cache_survives_a_process_killed_mid_write(tmp_path):
    db = tmp_path / "crash.db"
    script = textwrap.dedent(f"""
        import sys, time
        from retrieval.cache import FetchCache
        c = FetchCache({str(db)!r}, 3600)
        i = 0
        while True:
            c.put(f"https://example.org/{{i}}", f"https://example.org/{{i}}", 200, "text/html", {{}},
                  b"x" * 200_000, time.time())
            i += 1
            if i == 20:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    n = con.execute("SELECT count(*) FROM retrieval_fetch_cache").fetchone()[0]
    con.close()
    assert n >= 20
    from retrieval.cache import FetchCache

    c = FetchCache(db, 3600)
    e = c.get("https://example.org/0")
    assert e is not None and len(e.body) == 200_000
    c.put("https://example.org/after", "https://example.org/after", 200, "text/html", {}, b"ok", time.time())
    assert c.get("https://example.org/after").body == b"ok"


def test_cached_page_is_not_served_where_a_fetch_would_now_be_blocked(tmp_data_dir, fault_server):
    url = f"http://localhost:{fault_server.port}/ok?cached-private=1"
    assert fetch(RetrievalSettings(fetch_allow_hosts=["localhost"]), url).status == 200
    with pytest.raises(BlockedURLError):
        fetch(RetrievalSettings(), url)  # same database, no allowance: the cache does not bypass the guard
