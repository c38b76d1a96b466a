"""The local corpus index: build, persist, reload, incremental add, fingerprint rebuilds, and search quality on
the shipped corpus."""

from __future__ import annotations

import json
import shutil

import pytest

from retrieval import CorpusError, RetrievalSettings
from retrieval.corpus import DEFAULT_CORPUS, load_corpus, wikipedia_url
from retrieval.index import CorpusIndex


def test_shipped_corpus_has_wikipedia_urls_and_attribution():
    docs = load_corpus(None)
    assert len(docs) == 4858
    assert (DEFAULT_CORPUS.parent / "ATTRIBUTION.md").read_text().count("CC BY-SA 4.0") >= 1
    kiss = next(d for d in docs if d.title == "Kiss and Tell (1945 film)")
    assert kiss.url == "https://en.wikipedia.org/wiki/Kiss_and_Tell_(1945_film)"
    assert wikipedia_url("AC/DC") == "https://en.wikipedia.org/wiki/AC%2FDC"


def test_build_persist_reload_and_search(tmp_data_dir, small_jsonl):
    s = RetrievalSettings()
    idx = CorpusIndex.open(s, small_jsonl)
    assert len(idx.docs) > 40 and len(idx.passages) >= len(idx.docs)
    path = idx.path
    assert (path / "meta.json").exists() and (path / "dense.faiss").exists()
    built_at = idx.meta["built_at"]
    again = CorpusIndex.open(s, small_jsonl)
    assert again.meta["built_at"] == built_at  # loaded, not rebuilt
    for mode in ("bm25", "dense", "fused"):
        top = again.search_docs("Shirley Temple ambassador Chief of Protocol", 3, mode)
        assert top[0][1].title == "Shirley Temple", mode
    # every passage is an exact slice of its document
    for i in range(len(again.passages)):
        d, a, b = again.passages[i]
        assert again.docs[d].text[a:b] == again.passage_text(i) and b > a


def test_incremental_add_replace_and_skip(tmp_data_dir, small_jsonl, tmp_path):
    s = RetrievalSettings()
    idx = CorpusIndex.open(s, small_jsonl)
    n_docs, n_pass = len(idx.docs), len(idx.passages)
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"id": "x1", "title": "Zorblax lighthouse",
                                 "text": "The Zorblax lighthouse stands on a granite cliff. Its lamp was lit in 1887."})
                     + "\n", encoding="utf-8")
    stats = idx.add(load_corpus(extra))
    assert stats == {"added": 1, "replaced": 0, "skipped": 0}
    assert len(idx.docs) == n_docs + 1 and len(idx.passages) > n_pass
    reloaded = CorpusIndex.open(s, small_jsonl)
    assert reloaded.search_docs("When was the Zorblax lamp lit?", 1)[0][1].title == "Zorblax lighthouse"
    assert reloaded._faiss.ntotal == len(reloaded.passages)
    # the same document again: skipped; changed text: replaced
    assert reloaded.add(load_corpus(extra))["skipped"] == 1
    extra.write_text(json.dumps({"id": "x1", "title": "Zorblax lighthouse",
                                 "text": "The Zorblax lighthouse was rebuilt in steel in 1990."}) + "\n")
    assert reloaded.add(load_corpus(extra))["replaced"] == 1
    hit = reloaded.search_docs("Zorblax lighthouse rebuilt steel", 1)[0][1]
    assert "steel" in hit.text and len(reloaded.docs) == n_docs + 1
    assert reloaded._faiss.ntotal == len(reloaded.passages)


def test_changed_corpus_or_settings_rebuild_and_keep_added_docs(tmp_data_dir, small_jsonl, tmp_path):
    src = tmp_path / "c.jsonl"
    shutil.copy(small_jsonl, src)
    s = RetrievalSettings()
    idx = CorpusIndex.open(s, src)
    idx.add(load_corpus(_one(tmp_path, "y1", "Quuxville", "Quuxville is a town with a famous clock tower.")))
    first = idx.meta["built_at"]
    with src.open("a", encoding="utf-8") as fh:  # the corpus changes: rebuilt, the added doc is kept
        fh.write(json.dumps({"id": "new", "title": "Brand new doc", "text": "A brand new paragraph about kites."}) + "\n")
    idx2 = CorpusIndex.open(s, src)
    assert idx2.meta["built_at"] != first
    titles = {d.title for d in idx2.docs}
    assert {"Brand new doc", "Quuxville"} <= titles
    # a different chunking setting changes the fingerprint: rebuilt
    s2 = RetrievalSettings(index_passage_words=60)
    idx3 = CorpusIndex.open(s2, src)
    assert idx3.meta["settings_fingerprint"] != idx2.meta["settings_fingerprint"]
    # a corrupt index is rebuilt, not fatal
    (idx3.path / "passages.npy").write_bytes(b"garbage")
    idx4 = CorpusIndex.open(s2, src)
    assert len(idx4.passages) == len(idx3.passages)


def _one(tmp_path, i, title, text):
    p = tmp_path / f"{i}.jsonl"
    p.write_text(json.dumps({"id": i, "title": title, "text": text}) + "\n", encoding="utf-8")
    return p


def test_folder_corpus(tmp_data_dir, tmp_path, shared_data):
    folder = tmp_path / "pages"
    folder.mkdir()
    for name in ("Anglo-Zanzibar_War.txt", "Blue_whale.txt"):
        shutil.copy(shared_data / "wiki_pages" / name, folder / name)
    (folder / "notes.md").write_text("# Garden notes\n\nTomatoes need full sun and regular watering.\n")
    (folder / "page.html").write_text("<html><head><title>Kite festival</title></head><body><article><p>The kite "
                                      "festival happens every April on the northern beach.</p></article></body></html>")
    idx = CorpusIndex.open(RetrievalSettings(), folder)
    titles = {d.title for d in idx.docs}
    assert titles == {"Anglo-Zanzibar War", "Blue whale", "Garden notes", "Kite festival"}
    assert idx.search_docs("shortest war in history", 1)[0][1].title == "Anglo-Zanzibar War"
    assert idx.search_docs("when is the kite festival", 1)[0][1].title == "Kite festival"


def test_bad_corpus_sources(tmp_data_dir, tmp_path):
    s = RetrievalSettings()
    with pytest.raises(CorpusError, match="not found"):
        CorpusIndex.open(s, tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "title": "a", "text": "ok"}\n{not json\n')
    with pytest.raises(CorpusError, match="bad.jsonl:2"):
        CorpusIndex.open(s, bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match="no .txt"):
        CorpusIndex.open(s, empty)
