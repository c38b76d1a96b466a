"""Retrieval benchmarks: quality (recall@5/10 of HotpotQA supporting titles, BM25 vs dense vs fused), index build
speed and peak memory, search latency, fetch throughput from the local web, reader throughput.

    .venv/bin/python benchmarks/retrieval_bench.py                 # everything (wiki_pages build takes minutes)
    .venv/bin/python benchmarks/retrieval_bench.py --parts quality,latency
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("MOESEARCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


def machine() -> str:
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        threads = "?"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {threads}, " \
           f"Python {platform.python_version()}"


def build_child(source: str | None, data_dir: str) -> None:
    """Runs in a subprocess so that its peak memory is its own."""
    from retrieval import RetrievalSettings
    from retrieval.index import CorpusIndex

    t0 = time.perf_counter()
    idx = CorpusIndex.open(RetrievalSettings(data_dir=Path(data_dir)), Path(source) if source else None,
                           rebuild=True)
    took = time.perf_counter() - t0
    print(json.dumps({"docs": len(idx.docs), "passages": int(len(idx.passages)), "seconds": took}))


def measure_build(source: str | None, data_dir: str) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--build-child", source or "", "--data-dir", data_dir],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"build of {source or 'default corpus'} failed")
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_rss_mb"] = usage.ru_maxrss / 1024
    res["passages_per_s"] = res["passages"] / res["seconds"]
    return res


def quality(data_dir: str, limit: int | None) -> dict:
    from retrieval import RetrievalSettings
    from retrieval.index import CorpusIndex

    idx = CorpusIndex.open(RetrievalSettings(data_dir=Path(data_dir)))
    rows = [json.loads(x) for x in (SHARED / "hotpotqa" / "dev300.jsonl").read_text().splitlines()][:limit]
    table = {}
    # latency first, each query embedded on its own (cold), then the quality runs reuse the query vectors
    latency: dict[str, list[float]] = {}
    for mode in ("bm25", "dense", "rrf", "fused"):
        idx.embedder._cache.clear()
        latency[mode] = []
        for row in rows[:50]:
            t0 = time.perf_counter()
            idx.search_docs(row["question"], 10, mode)
            latency[mode].append(time.perf_counter() - t0)
    idx.embedder.encode([row["question"] for row in rows], cache=True)
    for mode in ("bm25", "dense", "rrf", "fused"):
        r5, r10, both5 = [], [], []
        times = sorted(latency[mode])
        for row in rows:
            gold = set(row["supporting_titles"])
            titles = [d.title for _, d in idx.search_docs(row["question"], 10, mode)]
            r5.append(len(gold & set(titles[:5])) / len(gold))
            r10.append(len(gold & set(titles[:10])) / len(gold))
            both5.append(float(gold <= set(titles[:5])))
        table[mode] = {"recall@5": statistics.mean(r5), "recall@10": statistics.mean(r10),
                       "both@5": statistics.mean(both5), "p50_ms": 1000 * times[len(times) // 2],
                       "p95_ms": 1000 * times[int(len(times) * 0.95) - 1], "questions": len(rows)}
    return table


def fetch_and_read(data_dir: str, n_pages: int) -> dict:
    from retrieval import Fetcher, LocalWeb, Reader, RetrievalSettings

    out = {}
    with LocalWeb(None) as web:
        s = RetrievalSettings(data_dir=Path(data_dir), searxng_url=web.search_url, fetch_cache=False)
        urls = [web.doc_url(d) for d in web.docs[:n_pages]]
        for conc in (1, 8, 32):
            async def go(conc=conc):
                sem = asyncio.Semaphore(conc)
                async with Fetcher(s.model_copy(update={"fetch_per_host_concurrency": conc,
                                                         "fetch_max_concurrency": conc})) as f:
                    async def one(u):
                        async with sem:
                            return await f.fetch(u)

                    await f.fetch(urls[0])  # robots.txt and connection warm-up
                    t0 = time.perf_counter()
                    pages = await asyncio.gather(*(one(u) for u in urls))
                    return pages, time.perf_counter() - t0

            pages, took = asyncio.run(go())
            out[f"fetch_pages_per_s_c{conc}"] = len(pages) / took
        reader = Reader(s)
        reader.rank(reader.extract(pages[0]), "warm up", 3)
        t0 = time.perf_counter()
        for p in pages[:100]:
            reader.extract(p)
        out["extract_pages_per_s"] = min(100, len(pages)) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for p in pages[:50]:
            reader.read(p, "When was it founded and by whom?", 3)
        out["read_pages_per_s"] = min(50, len(pages)) / (time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="build,quality,fetch,wiki")
    ap.add_argument("--limit", type=int, default=None, help="questions for quality (default: all 300)")
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--wiki-files", type=int, default=None, help="index only the first N wiki_pages articles")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--build-child", default=None)
    args = ap.parse_args()
    if args.build_child is not None:
        build_child(args.build_child or None, args.data_dir)
        return
    parts = set(args.parts.split(","))
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="moesearch-bench-")
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    if "build" in parts:
        r = measure_build(None, data_dir)
        print(f"build default corpus: {r['docs']} docs, {r['passages']} passages in {r['seconds']:.1f}s "
              f"({r['passages_per_s']:.0f} passages/s), peak RSS {r['peak_rss_mb']:.0f} MB")
        from retrieval import RetrievalSettings
        from retrieval.index import CorpusIndex

        t0 = time.perf_counter()
        CorpusIndex.open(RetrievalSettings(data_dir=Path(data_dir)))
        print(f"reload default index: {time.perf_counter() - t0:.2f}s")
    if "quality" in parts:
        table = quality(data_dir, args.limit)
        print("| retriever | recall@5 | recall@10 | both gold@5 | p50 ms | p95 ms |")
        print("| --- | --- | --- | --- | --- | --- |")
        for mode, r in table.items():
            print(f"| {mode} | {r['recall@5']:.3f} | {r['recall@10']:.3f} | {r['both@5']:.3f} | {r['p50_ms']:.1f} | "
                  f"{r['p95_ms']:.1f} |")
    if "fetch" in parts:
        r = fetch_and_read(data_dir, args.pages)
        print("fetch+read:", ", ".join(f"{k} {v:.1f}" for k, v in r.items()))
    if "wiki" in parts:
        with tempfile.TemporaryDirectory() as d:
            src = SHARED / "wiki_pages"
            if args.wiki_files:
                import shutil

                sub = Path(d) / "wiki_subset"
                sub.mkdir()
                for f in sorted(src.glob("*.txt"))[: args.wiki_files]:
                    shutil.copy(f, sub / f.name)
                src = sub
            r = measure_build(str(src), d)
        print(f"build wiki_pages{f' (first {args.wiki_files})' if args.wiki_files else ''}: {r['docs']} docs, {r['passages']} passages in {r['seconds']:.1f}s "
              f"({r['passages_per_s']:.0f} passages/s), peak RSS {r['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
