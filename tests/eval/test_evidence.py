"""Snapshots: evidence recorded from the real local web over HTTP is served back exactly, offline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from eval import datasets as D
from eval.errors import SnapshotError
from eval.evidence import (RecordingFetcher, RecordingProvider, ReplayFetcher, ReplayProvider, Snapshot,
                           title_from_url, title_url, web_documents)

from .conftest import write_subset


@dataclass
class _Result:
    hits: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def test_snapshot_file_survives_a_killed_writer(tmp_path):
    path = tmp_path / "s.jsonl"
    snap = Snapshot(path)
    snap.record_search("q one", 5, None, None, _Result([{"url": "http://h/wiki/A", "title": "A"}]))
    snap.record_search("q one", 5, None, None, _Result([{"url": "http://h/wiki/A", "title": "A"}]))  # same: no line
    snap.record_search("q one", 5, None, None, _Result([{"url": "http://h/wiki/B", "title": "B"}]))  # newer wins
    snap.close()
    assert len(path.read_text().splitlines()) == 2
    with path.open("a") as fh:
        fh.write('{"kind": "page", "url": "http://h/wiki/A", "pa')  # a run killed mid-write
    again = Snapshot(path)
    assert list(again.searches.values())[0]["hits"][0]["title"] == "B" and not again.pages
    assert again.skipped_lines == [3]
    again.record_search("q two", 5, None, None, _Result([]))  # a resumed run appends on a fresh line
    again.close()
    third = Snapshot(path)
    assert len(third.searches) == 2 and third.skipped_lines == [3]
    path.write_text("[1, 2]\n")
    with pytest.raises(SnapshotError):
        Snapshot(path)
    with pytest.raises(SnapshotError):
        Snapshot.open_for_replay(tmp_path / "missing.jsonl")


def test_titles_and_urls():
    url = title_url("Kiss and Tell (1945 film)", "http://127.0.0.1:8123")
    assert url == "http://127.0.0.1:8123/wiki/Kiss_and_Tell_(1945_film)"
    assert title_from_url(url) == "Kiss and Tell (1945 film)"
    assert title_from_url("http://127.0.0.1:8123/search?q=x") is None


async def test_record_from_local_web_then_replay_offline(tmp_path):
    retrieval = pytest.importorskip("retrieval")
    if not all(hasattr(retrieval, n) for n in ("LocalWeb", "RetrievalSettings", "make_provider", "Fetcher")):
        pytest.skip("retrieval's LocalWeb/providers/Fetcher are not in yet")
    ds = D.load_dataset(write_subset(tmp_path / "two.jsonl", 2))
    question = ds.examples[0].question
    snap_path = tmp_path / "snap.jsonl"
    snap = Snapshot(snap_path)
    with retrieval.LocalWeb(web_documents(ds)) as web:
        rs = retrieval.RetrievalSettings(search_provider="searxng", searxng_url=web.search_url)
        provider = RecordingProvider(retrieval.make_provider(rs), snap)
        live = await provider.asearch(question, 5)
        assert live.hits, "the local web found nothing for a question built from its own pages"
        async with RecordingFetcher(retrieval.Fetcher(rs), snap) as fetcher:
            pages = [await fetcher.fetch(h.url) for h in live.hits[:3]]
        await provider.aclose()
        unfetched = live.hits[3].url if len(live.hits) > 3 else web.search_url.replace("/search", "/wiki/Nothing")
    snap.close()
    titles = {t for t, _ in ds.paragraphs()}
    assert all(title_from_url(h.url) in titles for h in live.hits), [h.url for h in live.hits]
    assert all(p.status == 200 and p.body for p in pages)

    # the web is gone: replay serves exactly what was recorded
    replay = Snapshot.open_for_replay(snap_path)
    rp = ReplayProvider(replay)
    again = await rp.asearch(question, 5)
    assert [(h.url, h.title, h.snippet) for h in again.hits] == [(h.url, h.title, h.snippet) for h in live.hits]
    async with ReplayFetcher(replay) as fetcher:
        served = [await fetcher.fetch(h.url) for h in live.hits[:3]]
        missing = await fetcher.fetch(unfetched)
    assert [(p.url, p.status, p.content_type, p.body) for p in served] == \
        [(p.url, p.status, p.content_type, p.body) for p in pages]
    assert missing.status == 404
    other = await rp.asearch("Shirley Temple Chief of Protocol", 3)  # never asked: ranked from the pool
    assert any("not in the snapshot" in w for w in other.warnings)
    assert {h.url for h in other.hits} <= {h.url for h in live.hits}
