"""Recall of the local index on a small multilingual set (issue 15, kind 10): 16 short pages (10 Chinese, 2
Japanese, 2 Korean, 1 Russian, 1 English) and one question per page, in the page's language. Prints recall@1 and
recall@3 per search mode.

    python -m benchmarks.multilingual_recall            # MiniLM (the bundled English model) for the dense part
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "retrieval" / "fixtures"


def recall(modes=("bm25", "dense", "fused")) -> dict[str, dict[str, float]]:
    from retrieval import RetrievalSettings
    from retrieval.index import CorpusIndex

    source = FIXTURES / "multilingual.jsonl"
    questions = [json.loads(line) for line in (FIXTURES / "multilingual_questions.jsonl").open(encoding="utf-8")]
    with tempfile.TemporaryDirectory() as d:
        settings = RetrievalSettings(data_dir=Path(d))
        idx = CorpusIndex.open(settings, source, index_dir=Path(d) / "index")
        out = {}
        for mode in modes:
            at1 = at3 = 0
            for q in questions:
                ids = [doc.id for _, doc in idx.search_docs(q["question"], k=3, mode=mode)]
                at1 += ids[:1] == [q["doc"]]
                at3 += q["doc"] in ids
            out[mode] = {"recall@1": at1 / len(questions), "recall@3": at3 / len(questions), "n": len(questions)}
    return out


if __name__ == "__main__":
    for mode, r in recall(tuple(sys.argv[1:]) or ("bm25", "dense", "fused")).items():
        print(f"{mode:6} recall@1 {r['recall@1']:.2f}  recall@3 {r['recall@3']:.2f}  ({r['n']} questions)")
