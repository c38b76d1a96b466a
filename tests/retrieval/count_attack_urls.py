"""Count how the attack URLs of issue 15 kind 3 end, for whichever `retrieval` is first on the path (not a test):

    PYTHONPATH=$PWD python -m tests.retrieval.count_attack_urls
    # the code before (run outside the checkout, or `-m` puts the current folder first on the path):
    git archive a6b102b retrieval | tar -x -C /tmp/old
    cd /tmp && PYTHONPATH=/tmp/old:$REPO $REPO/.venv/bin/python -m tests.retrieval.count_attack_urls

Prints {outcome: count} and every URL that did not end as our own one-line FetchError."""

from __future__ import annotations

import asyncio
from collections import Counter

from retrieval import FetchError, Fetcher, RetrievalSettings
from tests.retrieval.attack_urls import MALFORMED, NOT_HTTP, OBFUSCATED_LOOPBACK, REDIRECT_LOCATIONS
from tests.retrieval.conftest import HostileServer


async def _outcome(fetcher: Fetcher, url: str) -> str:
    try:
        await fetcher.fetch(url)
        return "fetched"
    except FetchError as e:
        return "our error, one line" if "\n" not in str(e) else "our error, several lines"
    except Exception as e:  # noqa: BLE001 - what this script counts
        return f"escaped {type(e).__name__}"


async def count() -> dict[str, str]:
    out: dict[str, str] = {}
    settings = RetrievalSettings(fetch_cache=False, fetch_timeout_connect_s=2, fetch_timeout_total_s=5,
                                 fetch_retries=0)
    async with Fetcher(settings) as f:
        for url in OBFUSCATED_LOOPBACK + MALFORMED + NOT_HTTP:
            out[repr(url)] = await _outcome(f, url)
    server = HostileServer()
    try:
        allowed = settings.model_copy(update={"fetch_allow_hosts": [f"127.0.0.1:{server.port}"]})
        async with Fetcher(allowed) as f:
            for i, (location, _) in enumerate(REDIRECT_LOCATIONS):
                url = server.page(f"/r{i}", b"", None, status=302, Location=location)
                out[f"redirect to {location!r}"] = await _outcome(f, url)
    finally:
        server.stop()
    return out


if __name__ == "__main__":
    results = asyncio.run(count())
    print(dict(Counter(results.values())))
    for url, outcome in results.items():
        if outcome != "our error, one line":
            print(f"  {outcome}: {url}")
