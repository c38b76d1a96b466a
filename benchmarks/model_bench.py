"""Prefill and decode speed of the embedded model: 1 and 2 threads, in process and through `moesearch model serve`.

    .venv/bin/python benchmarks/model_bench.py [--runs 3]

Prefill: tokens/s over a ~400-token prompt (no prompt cache: each run's prompt differs). Decode: tokens/s of 128
greedy tokens after a short prompt. Through the server: the same, measured by the client over HTTP, so the ratio to
in-process is the cost of serving.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_runtime.llamacpp_backend import LlamaCppLLM  # noqa: E402
from model_runtime.openai_backend import OpenAICompatLLM  # noqa: E402
from model_runtime.registry import embedded_model_path  # noqa: E402

TEXT = Path(__file__).resolve().parents[2].joinpath("shared/data/wiki_pages")


def long_prompt(i: int, llm) -> str:
    words = ("Mixture-of-Experts models route each token to a few experts, so only a fraction of the weights is "
             "read for every token. ").split()
    out, n = [f"Document {i}."], 0
    while llm.count_tokens(" ".join(out)) < 400:
        out.append(words[n % len(words)])
        n += 1
    return " ".join(out)


def measure(llm, runs: int) -> tuple[float, float]:
    prefill, decode = [], []
    for i in range(runs):
        prompt = long_prompt(i, llm)
        c = llm.generate(prompt, max_tokens=1)
        prefill.append(c.prompt_tokens / c.elapsed_s)
        c = llm.generate(f"Story {i}: Once upon a time", max_tokens=128, temperature=0.0)
        # subtract nothing: the short prompt's prefill is a few ms of the total
        decode.append(c.completion_tokens / c.elapsed_s)
    return statistics.median(prefill), statistics.median(decode)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    path = embedded_model_path()
    rows = []
    for threads in (1, 2):
        llm = LlamaCppLLM(path, n_ctx=2048, n_threads=threads, chat_template="none")
        llm.generate("warm up", max_tokens=4)
        rows.append(("in process", threads, *measure(llm, args.runs)))
        llm.close()
        port = 18000 + threads
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "model", "serve", "--port", str(port),
                                 "--threads", str(threads), "--n-ctx", "2048"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            remote = OpenAICompatLLM(f"http://127.0.0.1:{port}/v1")
            remote.generate("warm up", max_tokens=4)
            rows.append(("server (HTTP)", threads, *measure(remote, args.runs)))
            remote.close()
        finally:
            proc.terminate()
            proc.wait()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}")
    print(f"model: {path.name} ({path.stat().st_size / 1e6:.0f} MB)\n")
    print("| path | threads | prefill tok/s | decode tok/s |")
    print("|---|---|---|---|")
    for where, threads, p, d in rows:
        print(f"| {where} | {threads} | {p:.0f} | {d:.1f} |")


if __name__ == "__main__":
    main()
