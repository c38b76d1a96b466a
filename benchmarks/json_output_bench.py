"""JSON output of the embedded model: the grammar on every token vs. unconstrained first, the grammar as fallback.

    .venv/bin/python benchmarks/json_output_bench.py --questions 30

For the agent's plan prompt on the first N HotpotQA dev questions: seconds per plan with llama.cpp's grammar applied
to every token (the baseline) and with `LlamaCppLLM.generate`, which decodes without the grammar first and keeps the
output if it fits the schema (else runs the grammar). Also: how often the unconstrained output was kept, and how
often both give the same plan. The prompt cache is cleared before each call so both pay the same prefill.
Writes benchmarks/out/json_output_bench.json and prints a Markdown row for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_TOKENS = 60 + 50 * 3  # as the agent's plan step, which uses no stop sequences


def parsed(fn):
    """The plan, or None where even the grammar's output was cut off before it was whole (the agent falls back)."""
    from model_runtime.errors import ModelOutputError

    try:
        return fn()
    except ModelOutputError:
        return None


def main() -> None:
    import sys

    sys.path.insert(0, str(ROOT))
    from agent import prompts
    from eval.datasets import load_dataset
    from model_runtime import load_llm
    from model_runtime.base import parse_json_output
    from model_runtime.settings import ModelSettings

    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=30)
    args = ap.parse_args()
    llm = load_llm(ModelSettings())
    schema = prompts.plan_schema(3)
    rows = []
    for ex in load_dataset("hotpotqa-dev").examples[:args.questions]:
        prompt = prompts.plan_prompt(ex.question, 3)
        llm._llm.reset()
        t = time.perf_counter()
        text = "".join(piece for piece, _ in llm._run(prompt, MAX_TOKENS, 0.0, None, schema))
        grammar_s = time.perf_counter() - t
        grammar_plan = parsed(lambda: parse_json_output(text, schema))
        llm._llm.reset()
        kept = llm._greedy_json_without_grammar(prompt, MAX_TOKENS, None, schema) is not None
        llm._llm.reset()
        t = time.perf_counter()
        plan = parsed(lambda: llm.generate(prompt, max_tokens=MAX_TOKENS, json_schema=schema).data)
        rows.append({"id": ex.id, "grammar_s": grammar_s, "generate_s": time.perf_counter() - t,
                     "kept_unconstrained": kept, "same_plan": plan == grammar_plan,
                     "grammar_valid": grammar_plan is not None, "generate_valid": plan is not None})
    n = len(rows)
    summary = {
        "questions": n, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "grammar_s_mean": statistics.mean(r["grammar_s"] for r in rows),
        "generate_s_mean": statistics.mean(r["generate_s"] for r in rows),
        "kept_unconstrained": sum(r["kept_unconstrained"] for r in rows) / n,
        "same_plan": sum(r["same_plan"] for r in rows) / n,
        "grammar_valid": sum(r["grammar_valid"] for r in rows) / n,
        "generate_valid": sum(r["generate_valid"] for r in rows) / n,
    }
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "json_output_bench.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    print("| questions | grammar on every token: s/plan, valid | unconstrained first: s/plan, valid "
          "| kept unconstrained | same plan |")
    print("|---|---|---|---|---|")
    print(f"| {n} | {summary['grammar_s_mean']:.2f}, {100 * summary['grammar_valid']:.0f}% | "
          f"{summary['generate_s_mean']:.2f}, {100 * summary['generate_valid']:.0f}% | "
          f"{100 * summary['kept_unconstrained']:.0f}% | {100 * summary['same_plan']:.0f}% |")


if __name__ == "__main__":
    main()
