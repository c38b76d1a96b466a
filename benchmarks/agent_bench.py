"""Where the agent's time goes, per mode, on HotpotQA dev questions over the local web (real HTTP, embedded model).

    .venv/bin/python benchmarks/agent_bench.py --questions 30 --modes closed-book,quick,deep

For each mode: mean time per question and per step kind (plan, search, fetch, read, note, reflect, answer; steps of
parallel sub-questions overlap, so per-kind sums can exceed the wall clock), the share of the wall-clock total during
which the model was not generating, tokens in/out, and the agent's retrieval recall (gold supporting titles among
the pages it read). closed-book is the baseline: the model alone, no retrieval. Writes benchmarks/out/agent_bench.json
and agent_bench.png, and prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_STEPS = {"plan", "note", "reflect", "answer"}
KINDS = ["plan", "search", "fetch", "read", "note", "reflect", "answer"]


def busy(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of intervals: the model's busy time when parallel sub-questions' model calls
    overlap (they queue for the one model, so their step times add up to more than the wall clock)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def load_questions(n: int) -> list[dict]:
    path = ROOT / "eval" / "data" / "hotpotqa-dev.jsonl"
    if not path.exists():
        path = ROOT.parent / "shared" / "data" / "hotpotqa" / "dev300.jsonl"
    rows = [json.loads(line) for line in path.open() if line.strip()]
    return rows[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=30)
    ap.add_argument("--modes", default="closed-book,quick,deep")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args()

    from tqdm import tqdm

    from agent import AgentSettings, SearchAgent
    from model_runtime import load_llm
    from model_runtime.settings import ModelSettings
    from retrieval import LocalWeb, RetrievalSettings

    questions = load_questions(args.questions)
    llm = load_llm(ModelSettings(model="embedded"))
    results: dict[str, list[dict]] = defaultdict(list)
    with LocalWeb() as web:
        rs = RetrievalSettings(search_provider="searxng", searxng_url=web.search_url, fetch_cache=False)
        with SearchAgent(AgentSettings(deadline_s=600), llm=llm, retrieval_settings=rs) as agent:
            for mode in args.modes.split(","):
                for q in tqdm(questions, desc=mode, unit="q"):
                    t0 = time.perf_counter()
                    answer = agent.ask(q["question"], mode=mode)
                    total = time.perf_counter() - t0
                    by_kind = defaultdict(float)
                    for s in answer.trace:
                        by_kind[s.kind] += s.elapsed_s
                    read = {src["title"] for src in answer.sources}
                    gold = set(q.get("supporting_titles") or [])
                    results[mode].append({
                        "id": q["id"], "total_s": total, "steps": dict(by_kind),
                        "model_s": busy([(s.detail["t0"], s.detail["t0"] + s.elapsed_s) for s in answer.trace
                                         if s.kind in MODEL_STEPS]),
                        "tokens_in": answer.tokens_in, "tokens_out": answer.tokens_out,
                        "recall": len(gold & read) / len(gold) if gold else None,
                    })
    llm.close()

    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for mode, rows in results.items():
        total = statistics.mean(r["total_s"] for r in rows)
        recalls = [r["recall"] for r in rows if r["recall"] is not None]
        summary[mode] = {
            "questions": len(rows), "mean_total_s": total,
            "mean_step_s": {k: statistics.mean(r["steps"].get(k, 0.0) for r in rows) for k in KINDS},
            "non_model_share": 1 - sum(r["model_s"] for r in rows) / sum(r["total_s"] for r in rows),
            "tokens_in": statistics.mean(r["tokens_in"] for r in rows),
            "tokens_out": statistics.mean(r["tokens_out"] for r in rows),
            "recall": statistics.mean(recalls) if recalls and mode != "closed-book" else None,
        }
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    (args.out / "agent_bench.json").write_text(json.dumps({"machine": machine, "summary": summary,
                                                           "rows": results}, indent=1))
    header = "| mode | q | s/question | " + " | ".join(KINDS) + " | not model | tokens in/out | recall (read) |"
    print(f"\nmachine: {machine}\n\n{header}\n|" + "---|" * (len(KINDS) + 6))
    for mode, s in summary.items():
        steps = " | ".join(f"{s['mean_step_s'][k]:.1f}" for k in KINDS)
        recall = "-" if s["recall"] is None else f"{s['recall']:.2f}"
        print(f"| {mode} | {s['questions']} | {s['mean_total_s']:.1f} | {steps} | {s['non_model_share']:.0%} | "
              f"{s['tokens_in']:.0f}/{s['tokens_out']:.0f} | {recall} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    left = [0.0] * len(summary)
    for k in KINDS:
        vals = [summary[m]["mean_step_s"][k] for m in summary]
        ax.barh(list(summary), vals, left=left, label=k)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlabel("mean seconds per question (sum of steps)")
    ax.set_title("Where the agent's time goes (embedded Gemma 3 270M, local web)")
    ax.legend(ncol=4, fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "agent_bench.png", dpi=120)
    print(f"\nwrote {args.out / 'agent_bench.json'} and {args.out / 'agent_bench.png'}")


if __name__ == "__main__":
    main()
