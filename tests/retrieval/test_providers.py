"""Search providers: the local index (the shipped corpus, indexed on first use) and SearXNG against the local web
over real HTTP."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from retrieval import (BadQueryError, LocalWeb, RetrievalSettings, SearchUnavailableError, SearxngJSONDisabledError,
                       make_provider)
from retrieval.providers import LocalSearchProvider, SearxngSearchProvider
from tests.conftest import free_port

SAMPLE = "What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?"


@pytest.fixture(scope="session")
def default_provider(tmp_path_factory):
    """The shipped corpus, indexed once for the session into its own data dir (as on first use)."""
    data = tmp_path_factory.mktemp("default-data")
    p = LocalSearchProvider(RetrievalSettings(data_dir=data))
    yield p
    p.close()


def test_default_corpus_finds_the_sample_question_paragraphs(default_provider):
    res = default_provider.search("Corliss Archer Kiss and Tell", 5)
    titles = [h.title for h in res.hits]
    assert "Kiss and Tell (1945 film)" in titles[:3], titles
    res2 = default_provider.search(SAMPLE, 5)
    titles2 = [h.title for h in res2.hits]
    assert "Kiss and Tell (1945 film)" in titles2 and len(set(titles2)) == len(titles2), titles2
    res3 = default_provider.search("Shirley Temple Kiss and Tell government position", 5)
    assert "Shirley Temple" in [h.title for h in res3.hits]
    hit = res.hits[0]
    assert hit.url.startswith("https://en.wikipedia.org/wiki/") and hit.engine == "local"
    assert hit.document is not None and hit.snippet in hit.document.text and hit.document.url == hit.url


def test_default_index_is_persisted_and_reloaded(default_provider):
    from retrieval.index import CorpusIndex

    path = default_provider.index.path
    assert (path / "meta.json").exists()
    again = CorpusIndex.open(default_provider.settings)
    assert again.meta["built_at"] == default_provider.index.meta["built_at"]  # loaded, not rebuilt
    assert len(again.docs) == 4858 and again._faiss.ntotal == len(again.passages)


def test_async_search_and_bad_queries(default_provider):
    res = asyncio.run(default_provider.asearch("Meet Corliss Archer radio program", 3))
    assert "Meet Corliss Archer" in [h.title for h in res.hits[:2]]
    for bad in ("", "   ", "x" * 5000):
        with pytest.raises(BadQueryError):
            default_provider.search(bad)
    with pytest.raises(BadQueryError, match="time_range"):
        default_provider.search("x", time_range="decade")


def test_make_provider_follows_settings(tmp_data_dir, localweb):
    assert make_provider(RetrievalSettings()).name == "local"
    p = make_provider(RetrievalSettings(search_provider="searxng", searxng_url=localweb.search_url))
    assert p.name == "searxng"
    with pytest.raises(SearchUnavailableError, match="MOESEARCH_SEARXNG_URL"):
        make_provider(RetrievalSettings(search_provider="searxng"))


def test_local_web_serves_searxng_json(localweb):
    with urllib.request.urlopen(localweb.search_url + "/search?q=Shirley+Temple&format=json") as r:
        data = json.loads(r.read())
    assert data["results"][0]["title"] == "Shirley Temple"
    assert data["results"][0]["url"] == localweb.url + "/wiki/Shirley_Temple"
    assert {"url", "title", "content"} <= set(data["results"][0]) and "unresponsive_engines" in data


def test_searxng_provider_against_local_web(tmp_data_dir, localweb):
    p = SearxngSearchProvider(RetrievalSettings(searxng_url=localweb.search_url))
    res = p.search("Kiss and Tell Corliss Archer film", 5)
    assert res.hits and res.warnings == []
    assert any(h.title == "Kiss and Tell (1945 film)" for h in res.hits)
    assert all(h.url.startswith(localweb.url + "/wiki/") for h in res.hits)
    assert all(h.snippet for h in res.hits) and res.hits[0].engine == "localweb"
    res2 = asyncio.run(p.asearch("Kiss and Tell Corliss Archer film", 5))
    assert [h.url for h in res2.hits] == [h.url for h in res.hits]
    p.close()


def test_searxng_provider_survives_a_new_event_loop(tmp_data_dir, localweb):
    """Two asyncio.run calls (two event loops) on one provider: the second must not reuse the first loop's client."""
    p = SearxngSearchProvider(RetrievalSettings(searxng_url=localweb.search_url))
    first = asyncio.run(p.asearch("Kiss and Tell Corliss Archer film", 5))
    second = asyncio.run(p.asearch("Shirley Temple ambassador", 5))
    assert first.hits and second.hits
    assert any(h.title == "Shirley Temple" for h in second.hits)
    p.close()


def test_time_range_language_and_dates_pass_through(tmp_data_dir, localweb):
    p = SearxngSearchProvider(RetrievalSettings(searxng_url=localweb.search_url))
    res = p.search("harbour Zanzibar ferries", 5, time_range="month", language="de-CH")
    sent = localweb.requests[-1]
    assert sent["time_range"] == "month" and sent["language"] == "de-CH" and sent["format"] == "json"
    titles = [h.title for h in res.hits]
    assert "Fresh harbour report" in titles and "Old harbour report" not in titles
    fresh = next(h for h in res.hits if h.title == "Fresh harbour report")
    assert fresh.published is not None
    res_all = p.search("harbour Zanzibar ferries", 5)
    assert "Old harbour report" in [h.title for h in res_all.hits]
    assert "time_range" not in localweb.requests[-1]


def test_duplicate_urls_are_merged_and_unresponsive_engines_warned(tmp_data_dir, small_docs):
    with LocalWeb(small_docs) as web:
        web.unresponsive_engines = [["wikipedia", "timeout"], ["brave", "HTTP error"]]
        original = web.search

        def doubled(q, k=10, time_range=None):
            res = original(q, k, time_range)
            dupes = [dict(r, engine="other", engines=["other"], url=r["url"] + "#section") for r in res]
            return [x for pair in zip(res, dupes) for x in pair]

        web.search = doubled
        p = SearxngSearchProvider(RetrievalSettings(searxng_url=web.search_url))
        res = p.search("Shirley Temple", 5)
    urls = [h.url for h in res.hits]
    assert len(urls) == len(set(urls)) >= 2  # the server sent every URL twice
    assert res.hits[0].engine == "localweb,other"
    assert res.warnings == ["search engine wikipedia did not respond: timeout",
                            "search engine brave did not respond: HTTP error"]


def test_searxng_403_says_how_to_enable_json(tmp_data_dir, small_docs):
    with LocalWeb(small_docs[:5]) as web:
        web.json_enabled = False
        p = SearxngSearchProvider(RetrievalSettings(searxng_url=web.search_url))
        with pytest.raises(SearxngJSONDisabledError) as e:
            p.search("anything")
    msg = str(e.value)
    assert "403" in msg and "search.formats" in msg and "json" in msg and "settings.yml" in msg and "\n" not in msg


def test_searxng_unreachable_is_a_clear_error(tmp_data_dir):
    url = f"http://127.0.0.1:{free_port()}"
    p = SearxngSearchProvider(RetrievalSettings(searxng_url=url))
    with pytest.raises(SearchUnavailableError, match="cannot reach SearXNG") as e:
        p.search("anything")
    assert e.value.exit_code == 3
    with pytest.raises(SearchUnavailableError, match="cannot reach SearXNG"):
        asyncio.run(p.asearch("anything"))
