"""JSON output of the embedded model: the grammar on every token vs. unconstrained first, the grammar as fallback.

    .venv/bin/python benchmarks/json_output_bench.py --questions 30

For the agent's plan prompt on the first N HotpotQA dev questions: seconds per plan with llama.cpp's grammar applied
to every token (the baseline) and with `LlamaCppLLM.generate`, which decodes without the grammar first and keeps the
output if it fits the schema (else runs the grammar). Also: how often the unconstrained output was kept, how often
both give the same plan, and how many sub-questions the plans have; each for the current plan schema (depends_on
required) and a variant with depends_on optional. The prompt cache is cleared before each call so all pay the
same prefill. Writes benchmarks/out/json_output_bench.json and prints a Markdown table for benchmarks/RESULTS.md.
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
    from model_runtime.settings import ModelSettings

    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=30)
    args = ap.parse_args()
    llm = load_llm(ModelSettings())
    current = prompts.plan_schema(3)
    # the variant tried and measured: depends_on optional (planning.clean_plan copes without it)
    relaxed = json.loads(json.dumps(current))
    relaxed["properties"]["sub_questions"]["items"]["required"] = ["id", "question"]
    questions = [ex.question for ex in load_dataset("hotpotqa-dev").examples[:args.questions]]
    results = {"depends_on required (current)": measure(llm, prompts, questions, current),
               "depends_on optional": measure(llm, prompts, questions, relaxed)}
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "json_output_bench.json").write_text(json.dumps(
        {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "questions": len(questions), **results},
        indent=2))
    print("| plan schema | grammar on every token: s/plan | unconstrained first: s/plan | kept unconstrained "
          "| same plan | valid plans (grammar / unconstrained first) | sub-questions (grammar / unconstrained first) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        m = r["summary"]
        print(f"| {name} | {m['grammar_s']:.2f} | {m['generate_s']:.2f} | {100 * m['kept']:.0f}% | "
              f"{100 * m['same_plan']:.0f}% | {100 * m['grammar_valid']:.0f}% / {100 * m['generate_valid']:.0f}% | "
              f"{m['grammar_subs']:.1f} / {m['generate_subs']:.1f} |")


def measure(llm, prompts, questions: list[str], schema: dict) -> dict:
    from model_runtime.base import parse_json_output

    rows = []
    for question in questions:
        prompt = prompts.plan_prompt(question, 3)
        llm._llm.reset()
        t = time.perf_counter()
        text = "".join(piece for piece, _ in llm._run(prompt, MAX_TOKENS, 0.0, None, schema))
        grammar_s = time.perf_counter() - t
        grammar_plan = parsed(lambda: parse_json_output(text, schema))
        llm._llm.reset()
        _, free_tokens, kept = llm._greedy_json_without_grammar(prompt, MAX_TOKENS, None, schema)
        llm._llm.reset()
        t = time.perf_counter()
        plan = parsed(lambda: llm.generate(prompt, max_tokens=MAX_TOKENS, json_schema=schema).data)
        rows.append({"question": question, "grammar_s": grammar_s, "generate_s": time.perf_counter() - t,
                     "kept": kept, "free_tokens": free_tokens, "same_plan": plan == grammar_plan,
                     "grammar_valid": grammar_plan is not None, "generate_valid": plan is not None,
                     "grammar_subs": len((grammar_plan or {}).get("sub_questions", [])),
                     "generate_subs": len((plan or {}).get("sub_questions", []))})
    summary = {k: statistics.mean(float(r[k]) for r in rows)
               for k in ("grammar_s", "generate_s", "kept", "same_plan", "grammar_valid", "generate_valid",
                         "grammar_subs", "generate_subs")}
    return {"summary": summary, "rows": rows}


if __name__ == "__main__":
    main()
