"""Cold and warm start: how long a first answer takes from the command line, and what the imports cost.

Compares the query-embedding runtimes in the same run: ``onnx`` (ONNX Runtime + tokenizers, the default) against the
baseline ``sentence-transformers`` (torch + transformers), chosen with MOESEARCH_EMBED_RUNTIME.

- embedder: a fresh process imports the embedder, loads it and embeds one query (seconds to the first vector);
- cold CLI: ``moesearch ask "Who wrote Dune?" --mode M`` in a fresh process, wall time (the index already built);
  one more run per mode under ``python -X importtime`` gives the import seconds and the heaviest packages;
- warm: one process asks the question once to load everything, then two other questions per mode
  (``--warm-modes``; other questions, so that no answer is served from the model's prompt cache).

Wall times on a shared machine move with the load; the CPU seconds (user + system of the child process) move less.

    .venv/bin/python benchmarks/cold_start_bench.py                         # everything, 3 cold runs each
    .venv/bin/python benchmarks/cold_start_bench.py --parts embedder,cold --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "Who wrote Dune?"
WARM_QUESTIONS = ["Which city hosted the 1992 Summer Olympics?", "Who painted the Mona Lisa?"]
RUNTIMES = ("sentence-transformers", "onnx")  # baseline first
HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "onnxruntime", "llama_cpp", "faiss",
         "bm25s", "agent.graph", "trafilatura", "retrieval", "agent", "model_runtime", "sqlmodel")


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"load average {load:.1f} at start")


def _env(runtime: str, data_dir: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "MOESEARCH_EMBED_RUNTIME": runtime,
            "MOESEARCH_DATA_DIR": data_dir}


def _run(args: list[str], env: dict[str, str], timeout: float = 900) -> tuple[float, subprocess.CompletedProcess]:
    """(wall seconds, the finished process); ``proc.cpu_s`` holds its user + system CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc.cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return took, proc


def import_profile(stderr: str) -> dict[str, float]:
    """Seconds of `-X importtime` output: the total of the top-level imports and the cumulative time of the heavy
    packages (each counted where it was first imported at top level or below)."""
    total, heavy = 0.0, {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        try:
            us = int(cumulative)
        except ValueError:  # the header line
            continue
        module = name.strip()
        if not name[1:].startswith(" "):  # top level: one leading space
            total += us / 1e6
        if module in HEAVY:
            heavy[module] = heavy.get(module, 0.0) + us / 1e6
    return {"total": total, **{k: round(v, 2) for k, v in sorted(heavy.items(), key=lambda kv: -kv[1])}}


def embedder_first_vector(runtime: str, data_dir: str) -> float:
    code = ("import time; t = time.perf_counter(); from retrieval.embed import Embedder; "
            f"Embedder(runtime={runtime!r}).encode([{QUESTION!r}]); print(time.perf_counter() - t)")
    _, proc = _run([sys.executable, "-c", code], _env(runtime, data_dir))
    return float(proc.stdout.strip().splitlines()[-1])


def cold_cli(runtime: str, mode: str, data_dir: str, importtime: bool = False) -> tuple[float, dict]:
    args = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "agent.cli", "ask", QUESTION,
            "--mode", mode, "--json"]
    took, proc = _run(args, _env(runtime, data_dir))
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    info = {"answer": answer.get("answer", "")[:80], "ask_s": answer.get("elapsed_s"), "cpu_s": proc.cpu_s}
    if importtime:
        info["imports"] = import_profile(proc.stderr)
    return took, info


def warm_child(modes: list[str]) -> None:
    """In one process: load everything with one quick question, then time one question per mode."""
    from agent import SearchAgent

    t0 = time.perf_counter()
    agent = SearchAgent()
    agent.ask(QUESTION, mode="quick")
    out = {"first_quick_s": time.perf_counter() - t0}
    for mode in modes:
        times = []
        for question in WARM_QUESTIONS:
            t = time.perf_counter()
            agent.ask(question, mode=mode)
            times.append(time.perf_counter() - t)
        out[mode] = statistics.mean(times)
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="embedder,cold,warm")
    ap.add_argument("--repeats", type=int, default=3, help="cold runs per runtime and mode (interleaved)")
    ap.add_argument("--modes", default="closed-book,quick", help="modes for the cold CLI runs")
    ap.add_argument("--warm-modes", default="closed-book,quick,deep")
    ap.add_argument("--data-dir", default=None, help="default: a new temporary folder (index built first)")
    ap.add_argument("--warm-child", default=None)
    args = ap.parse_args()
    if args.warm_child is not None:
        warm_child(args.warm_child.split(","))
        return
    parts = set(args.parts.split(","))
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="moesearch-cold-")
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    _run([sys.executable, "-m", "agent.cli", "ask", QUESTION, "--mode", "quick"], _env("onnx", data_dir))  # index
    if "embedder" in parts:
        times = {r: [] for r in RUNTIMES}
        for _ in range(args.repeats):
            for r in RUNTIMES:
                times[r].append(embedder_first_vector(r, data_dir))
        print("\n| embedding runtime | import + load + first query vector, s (median of runs) | runs |")
        print("| --- | --- | --- |")
        for r in RUNTIMES:
            print(f"| {r} | {statistics.median(times[r]):.2f} | {', '.join(f'{t:.2f}' for t in times[r])} |")
    if "cold" in parts:
        modes = args.modes.split(",")
        walls: dict[tuple[str, str], list[float]] = {(r, m): [] for r in RUNTIMES for m in modes}
        asks: dict[tuple[str, str], list[float]] = {(r, m): [] for r in RUNTIMES for m in modes}
        cpus: dict[tuple[str, str], list[float]] = {(r, m): [] for r in RUNTIMES for m in modes}
        profiles = {}
        for _ in range(args.repeats):
            for m in modes:
                for r in RUNTIMES:
                    took, info = cold_cli(r, m, data_dir)
                    walls[(r, m)].append(took)
                    asks[(r, m)].append(info["ask_s"] or 0.0)
                    cpus[(r, m)].append(info["cpu_s"])
        for m in modes:
            for r in RUNTIMES:
                profiles[(r, m)] = cold_cli(r, m, data_dir, importtime=True)[1]["imports"]
        print(f"\n| runtime | mode | cold CLI wall s (median) | inside ask s | outside ask s | runs | CPU s (median) "
              f"| imports s (-X importtime) | heaviest imports s |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for m in modes:
            for r in RUNTIMES:
                w, a = statistics.median(walls[(r, m)]), statistics.median(asks[(r, m)])
                prof = profiles[(r, m)]
                heavy = ", ".join(f"{k} {v:.2f}" for k, v in list(prof.items())[1:7])
                print(f"| {r} | {m} | {w:.1f} | {a:.1f} | {w - a:.1f} | "
                      f"{', '.join(f'{t:.1f}' for t in walls[(r, m)])} | {statistics.median(cpus[(r, m)]):.1f} | "
                      f"{prof['total']:.1f} | {heavy} |")
    if "warm" in parts:
        print("\n| runtime | first quick answer in the process s | " + " | ".join(
            f"warm {m} s (mean of 2 questions)" for m in args.warm_modes.split(",")) + " |")
        print("|---|---|" + "---|" * len(args.warm_modes.split(",")))
        for r in RUNTIMES:
            _, proc = _run([sys.executable, __file__, "--warm-child", args.warm_modes], _env(r, data_dir))
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"| {r} | {res['first_quick_s']:.1f} | " + " | ".join(
                f"{res[m]:.1f}" for m in args.warm_modes.split(",")) + " |")


if __name__ == "__main__":
    main()
