"""Kind 10 of issue 15 (the retrieval part): questions in Chinese, Japanese, Korean and Russian find their page.
BM25 tokenizes runs of CJK characters as character bigrams; an index built with the old tokenizer rebuilds its
BM25 part when opened. The set: tests/retrieval/fixtures/multilingual*.jsonl (16 pages, one question each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval import RetrievalSettings
from retrieval.index import CorpusIndex
from retrieval.text import TOKENIZER_VERSION, tokenize

FIXTURES = Path(__file__).parent / "fixtures"
SOURCE = FIXTURES / "multilingual.jsonl"
QUESTIONS = [json.loads(line) for line in (FIXTURES / "multilingual_questions.jsonl").open(encoding="utf-8")]


def test_cjk_runs_become_bigrams_and_other_words_are_unchanged():
    assert tokenize("长城全长") == ["长城", "城全", "全长"]
    assert tokenize("熊") == ["熊"]
    assert tokenize("The running whales") == ["run", "whale"]
    assert tokenize("iPhone手机") == ["iphon", "手机"]  # mixed scripts in one \w run are split
    assert tokenize("한글은 누가") == ["한글", "글은", "누가"]
    assert tokenize("Москва — столица") == ["москва", "столица"]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> CorpusIndex:
    d = tmp_path_factory.mktemp("multilingual")
    return CorpusIndex.open(RetrievalSettings(data_dir=d), SOURCE, index_dir=d / "index")


def top_ids(index: CorpusIndex, question: str, mode: str, k: int = 1) -> list[str]:
    return [doc.id for _, doc in index.search_docs(question, k=k, mode=mode)]


@pytest.mark.parametrize("q", QUESTIONS, ids=[q["doc"] for q in QUESTIONS])
def test_bm25_puts_the_right_page_first(index, q):
    assert top_ids(index, q["question"], "bm25") == [q["doc"]]


def test_fused_search_recall(index):
    """Fused with the bundled English MiniLM, recall@1 over the 16 questions (measured 16/16; the English model's
    own recall@1 here is 14/16, BM25 with the old whole-run tokens 4/16)."""
    hits = sum(top_ids(index, q["question"], "fused") == [q["doc"]] for q in QUESTIONS)
    assert hits >= 15


def test_an_index_built_with_the_old_tokenizer_rebuilds_its_bm25(tmp_path, monkeypatch):
    import retrieval.index as index_module

    settings = RetrievalSettings(data_dir=tmp_path)
    monkeypatch.setattr(index_module, "tokenize", lambda text: text.lower().split())  # whole runs, as before
    old = CorpusIndex.open(settings, SOURCE, index_dir=tmp_path / "index", dense=False)
    assert top_ids(old, "长城全长大约多少公里？", "bm25") == []
    meta = json.loads((tmp_path / "index" / "meta.json").read_text())
    meta["tokenizer"] = 1
    (tmp_path / "index" / "meta.json").write_text(json.dumps(meta))
    monkeypatch.undo()
    new = CorpusIndex.open(settings, SOURCE, index_dir=tmp_path / "index", dense=False)
    assert new.meta["tokenizer"] == TOKENIZER_VERSION
    assert top_ids(new, "长城全长大约多少公里？", "bm25") == ["greatwall"]
    assert json.loads((tmp_path / "index" / "meta.json").read_text())["tokenizer"] == TOKENIZER_VERSION
