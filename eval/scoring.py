"""Turning one agent Answer into a scored result row, and result rows into aggregate metrics with CIs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from eval import metrics as M
from eval.datasets import Example
from eval.evidence import title_from_url

# The numbers every aggregate holds, in report order: (key, label, scale-to-percent)
SCORE_KEYS = [
    ("short_em", "EM"),  # of the short answer: the headline
    ("short_f1", "F1"),
    ("f1", "Text F1"),  # of the whole answer text
    ("acc", "Contains acc"),
    ("em", "Text EM"),
    ("recall_fetched", "Recall fetched"),
    ("recall_cited", "Recall cited"),
    ("cit_precision", "Cit. precision"),
    ("cit_recall", "Cit. recall"),
    ("gold_in_fetched", "Answer in pages"),
]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def step_times(trace: Sequence[Any]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for s in trace:
        out[str(_get(s, "kind", "?"))] += float(_get(s, "elapsed_s", 0.0) or 0.0)
    return dict(out)


def score_answer(example: Example, answer: Any, mode: str, *,
                 page_texts: dict[str, str] | None = None) -> dict[str, Any]:
    """Per-question metrics and the evidence they rest on, as fields of an `EvalResult` row.

    `page_texts` maps a page title to its text when the evaluator knows it (a local web built from the dataset); it
    lets the citation check confirm each quote is really on its page and tells whether a gold answer was in the pages
    the agent read.
    """
    text = _get(answer, "text", "") or ""
    citations = [{"n": _get(c, "n"), "url": _get(c, "url", ""), "title": _get(c, "title", ""),
                  "quote": _get(c, "quote", ""), "published": _get(c, "published")}
                 for c in (_get(answer, "citations", []) or [])]
    sources = list(_get(answer, "sources", []) or [])
    fetched_urls = list(dict.fromkeys(list(_get(answer, "fetched_urls", []) or [])
                                      + [s.get("url", "") for s in sources if isinstance(s, dict)]))
    src_title = {s.get("url"): s.get("title") for s in sources if isinstance(s, dict)}

    def title_of(url: str, fallback: str | None = None) -> str:
        return title_from_url(url) or src_title.get(url) or fallback or ""

    fetched_titles = list(dict.fromkeys(t for t in (title_of(u) for u in fetched_urls if u) if t))
    cited_titles = list(dict.fromkeys(t for t in (title_of(c["url"], c["title"]) for c in citations) if t))
    retrieval = mode != "closed-book"
    sup = example.supporting_titles
    short = _get(answer, "short_answer", None)
    short_em, short_f1 = M.short_answer_scores(None if short is None else str(short), example.answers)
    row: dict[str, Any] = {
        "prediction": text,
        "short_answer": None if short is None else str(short),
        "short_em": short_em,
        "short_f1": short_f1,
        "citations": citations,
        "fetched_urls": fetched_urls,
        "fetched_titles": fetched_titles,
        "em": M.exact_match(text, example.answers),
        "f1": M.f1(text, example.answers),
        "acc": M.accuracy(text, example.answers),
        "recall_fetched": M.title_recall(sup, fetched_titles) if retrieval else None,
        "recall_cited": M.title_recall(sup, cited_titles) if retrieval else None,
        "cit_precision": None,
        "cit_recall": None,
        "gold_in_fetched": None,
        "n_citations": len(citations),
        "settled": bool(_get(answer, "settled", True)),
    }
    if page_texts is not None:  # look pages up by normalised title (URLs spell spaces as underscores)
        page_texts = {M.normalize_title(t): text for t, text in page_texts.items()}
    if retrieval:
        by_url = None
        if page_texts is not None:
            by_url = {c["url"]: page_texts[t] for c in citations
                      if (t := M.normalize_title(title_of(c["url"], c["title"]))) in page_texts}
        cq = M.citation_quality(text, citations, by_url, question=example.question)
        row["cit_precision"], row["cit_recall"] = cq.precision, cq.recall
        if cq.recall is None and text.strip():
            row["cit_recall"] = 0.0
        if page_texts is not None:
            texts = [page_texts[M.normalize_title(t)] for t in fetched_titles if M.normalize_title(t) in page_texts]
            row["gold_in_fetched"] = M.answer_in_texts(example.answers, texts)
    trace = [{"kind": _get(s, "kind"), "label": _get(s, "label", ""), "elapsed_s": _get(s, "elapsed_s", 0.0),
              "tokens_in": _get(s, "tokens_in", 0), "tokens_out": _get(s, "tokens_out", 0)}
             for s in (_get(answer, "trace", []) or [])]
    row["trace"] = trace
    row["step_times"] = step_times(trace)
    row["tokens_in"] = sum(int(s["tokens_in"] or 0) for s in trace)
    row["tokens_out"] = sum(int(s["tokens_out"] or 0) for s in trace)
    return row


def aggregate(rows: Sequence[Any], *, resamples: int = 1000) -> dict[str, dict[str, Any]]:
    """Metrics per mode: each score as {mean, lo, hi, n} (95% percentile bootstrap), latency, tokens, steps.

    A failed question counts as wrong in every answer score (its row holds zeros) and is counted in `errors`. Rows
    without a short answer (short_em None: made before short answers existed) are left out of EM/F1's means.
    """
    by_mode: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_mode[_get(r, "mode")].append(r)
    out: dict[str, dict[str, Any]] = {}
    for mode, rs in by_mode.items():
        m: dict[str, Any] = {"n": len(rs), "errors": sum(1 for r in rs if _get(r, "error"))}
        for key, _label in SCORE_KEYS:
            m[key] = M.bootstrap_ci([_get(r, key) for r in rs], resamples=resamples).as_dict()
        lat = [float(_get(r, "latency_s", 0.0) or 0.0) for r in rs]
        m["latency_s"] = {"mean": sum(lat) / len(lat) if lat else None, "p50": M.percentile(lat, 50),
                          "p95": M.percentile(lat, 95), "total": sum(lat)}
        m["tokens_in"] = sum(int(_get(r, "tokens_in", 0) or 0) for r in rs) / max(1, len(rs))
        m["tokens_out"] = sum(int(_get(r, "tokens_out", 0) or 0) for r in rs) / max(1, len(rs))
        steps: dict[str, float] = defaultdict(float)
        for r in rs:
            st = _get(r, "step_times", {}) or {}
            if isinstance(st, str):
                import json

                st = json.loads(st)
            for k, v in st.items():
                steps[k] += float(v or 0.0)
        m["step_s"] = {k: v / len(rs) for k, v in sorted(steps.items())}
        # where the pipeline loses: answers when every gold page was read vs not, and when a page read held a
        # gold answer vs not (the first split is retrieval, the second is reading and answering)
        def split(pred) -> dict[str, Any]:
            sel = [r for r in rs if pred(r)]
            n = len(sel)
            shorts = [float(v) for r in sel if (v := _get(r, "short_f1")) is not None]
            return {"n": n, "f1": sum(float(_get(r, "f1")) for r in sel) / n if n else None,
                    "acc": sum(float(_get(r, "acc")) for r in sel) / n if n else None,
                    "short_f1": sum(shorts) / len(shorts) if shorts else None}

        rf, gf = "recall_fetched", "gold_in_fetched"
        m["f1_by_recall"] = {"all_gold_fetched": split(lambda r: _get(r, rf) == 1.0),
                             "not_all_fetched": split(lambda r: _get(r, rf) is not None and _get(r, rf) < 1.0)}
        m["by_evidence"] = {"answer_in_pages": split(lambda r: _get(r, gf) == 1.0),
                            "answer_not_in_pages": split(lambda r: _get(r, gf) == 0.0)}
        out[mode] = m
    order = {"closed-book": 0, "quick": 1, "deep": 2}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], 9), kv[0])))
