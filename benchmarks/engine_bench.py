"""Our torch MoE engine vs llama.cpp on the same GGUF file: prefill and decode tokens/s, achieved weight bandwidth
per decoded token against the machine's measured memory bandwidth, peak memory.

    .venv/bin/python benchmarks/engine_bench.py                       # embedded Gemma 3 270M + synthetic OLMoE
    .venv/bin/python benchmarks/engine_bench.py --models embedded --kernels reference cpu-int8 cpu-int4
    .venv/bin/python benchmarks/engine_bench.py --expert-cache [GGUF]        # static placement vs LRU/LFU cache

Our CPU kernels are measured twice: a cold load (empty prepared-weight cache: the GGUF is dequantized and quantized,
and the cache written) and a warm load (the cache just written, memory-mapped); `--no-cache` loads without it.
Each engine runs in its own process (peak memory = that process's peak resident set, VmHWM). Decode: greedy, one token at a time
after a prefill of --prompt tokens. Active weight bytes per decoded token: every non-expert weight (attention,
norms, the output head; not the embedding table, of which one row is read) plus top_k/n_experts of the expert
weights, counted in each engine's own storage format (llama.cpp: the GGUF types; ours: float32 everywhere for
`reference`; otherwise the kernel's int8/int4 bytes for experts, int8 for attention projections and the head,
float32 norms and router).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# storage bytes per weight of our kernels (int4: 4 bits + a bf16 scale and zero per group of 32)
OUR_BYTES = {"reference": 4.0, "cpu-int8": 1.0, "cpu-int4": 0.5 + 4 / 32}
OUR_HEAD_BYTES = {"reference": 4.0, "cpu-int8": 1.0, "cpu-int4": 1.0}


def memory_bandwidth_gbs(threads: int, mb: int = 1024, repeats: int = 7) -> tuple[float, float]:
    """Best of `repeats` passes over a tensor much larger than the caches, with `threads` threads: (read GB/s of a
    sum, which reads like a weight-bound matmul; copy GB/s counting bytes read + written)."""
    import torch

    torch.set_num_threads(threads)
    src = torch.ones(mb * 1024 * 1024 // 4)
    dst = torch.empty_like(src)
    best_read = best_copy = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        src.sum()
        best_read = min(best_read, time.perf_counter() - t)
        t = time.perf_counter()
        dst.copy_(src)
        best_copy = min(best_copy, time.perf_counter() - t)
    n = src.numel() * 4
    return n / best_read / 1e9, 2 * n / best_copy / 1e9


def synthetic_olmoe(path: Path, n_layer: int = 2) -> Path:
    """OLMoE-1B-7B layer shapes (d 2048, 16 heads of 128, 64 experts of width 1024, top-8, vocab 50304) with
    random Q4_K weights (Q6_K head), `n_layer` layers instead of 16."""
    import gguf

    from tests.model_runtime.gguf_fixtures import quantized_bytes, tokenizer_metadata

    if path.exists():
        return path
    d, h, hd, e, f, v, k = 2048, 16, 128, 64, 1024, 50304, 8
    rng = np.random.default_rng(0)
    a = "olmoe"
    w = gguf.GGUFWriter(str(path), a)
    w.add_name("synthetic-olmoe")
    for key, val in {"context_length": 4096, "embedding_length": d, "block_count": n_layer,
                     "feed_forward_length": f, "attention.head_count": h, "attention.head_count_kv": h,
                     "expert_count": e, "expert_used_count": k, "vocab_size": v}.items():
        w.add_uint32(f"{a}.{key}", val)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_float32(f"{a}.rope.freq_base", 10000.0)
    for key, val in tokenizer_metadata(v).items():
        if isinstance(val, bool):
            w.add_bool(key, val)
        elif isinstance(val, int):
            w.add_uint32(key, val)
        elif isinstance(val, str):
            w.add_string(key, val)
        elif key == "tokenizer.ggml.token_type":
            w.add_key_value(key, val, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32)
        else:
            w.add_array(key, val)

    def q(name, shape, qt="Q4_K"):
        data = quantized_bytes(np.broadcast_to(np.float32(0), shape), qt, rng)
        w.add_tensor(name, data, raw_dtype=gguf.GGMLQuantizationType[qt])

    def norm(name, n):
        w.add_tensor(name, (1 + 0.1 * rng.standard_normal(n)).astype(np.float32))

    q("token_embd.weight", (v, d))
    q("output.weight", (v, d), "Q6_K")
    norm("output_norm.weight", d)
    for i in range(n_layer):
        p = f"blk.{i}."
        norm(p + "attn_norm.weight", d)
        norm(p + "ffn_norm.weight", d)
        norm(p + "attn_q_norm.weight", d)
        norm(p + "attn_k_norm.weight", d)
        for n in ("attn_q", "attn_k", "attn_v", "attn_output"):
            q(p + n + ".weight", (d, d))
        w.add_tensor(p + "ffn_gate_inp.weight", rng.standard_normal((e, d)).astype(np.float32))
        q(p + "ffn_gate_exps.weight", (e, f, d))
        q(p + "ffn_up_exps.weight", (e, f, d))
        q(p + "ffn_down_exps.weight", (e, d, f))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def active_bytes(path: Path, engine: str) -> float:
    """Weight bytes read per decoded token (see the module docstring)."""
    from model_runtime.engine.gguf_file import GGUFModelFile

    f = GGUFModelFile(path)
    n_exp = int(f.hp("expert_count", 1) or 1)
    top_k = int(f.hp("expert_used_count", 1) or 1)
    tied = not f.has("output.weight")
    total = 0.0
    for n in f.tensor_names:
        if n == "token_embd.weight" and not tied:
            continue
        frac = top_k / n_exp if "_exps." in n else 1.0
        numel = float(np.prod(f.shape(n)))
        if engine == "llamacpp":
            b = f.nbytes(n)
        elif n in ("token_embd.weight", "output.weight"):
            b = numel * OUR_HEAD_BYTES[engine]
        elif "_exps." in n or "_shexp" in n or n.endswith(("ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")):
            b = numel * OUR_BYTES[engine]
        elif n.endswith(("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight")):
            b = numel * OUR_HEAD_BYTES[engine]
        else:
            b = numel * 4.0
        total += b * frac
    return total


def run_one(engine: str, path: str, prompt_len: int, n_decode: int, threads: int, cache_dir: str | None = None) -> dict:
    """In this process: load, prefill `prompt_len` tokens, decode `n_decode` greedily; times and peak memory.
    Our engine loads through the prepared-weight cache in `cache_dir` when given (cold: empty; warm: filled)."""
    import torch

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    prompt = [2] + rng.integers(300, 2000, prompt_len - 1).tolist()
    t0 = time.perf_counter()
    if engine == "llamacpp":
        from llama_cpp import Llama

        llm = Llama(model_path=path, n_ctx=prompt_len + n_decode + 8, n_threads=threads, n_threads_batch=threads,
                    n_batch=prompt_len + n_decode + 8, verbose=False)
        load = time.perf_counter() - t0
        t = time.perf_counter()
        llm.eval(prompt)
        prefill = time.perf_counter() - t
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t = time.perf_counter()
        for _ in range(n_decode):
            llm.eval([tok])
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        decode = time.perf_counter() - t
    else:
        from model_runtime.engine.loader import load_model

        model, f = load_model(path, engine, cache_dir=Path(cache_dir) if cache_dir else None)
        f.close()
        load = time.perf_counter() - t0
        cache = model.new_cache(prompt_len + n_decode + 8)
        t = time.perf_counter()
        logits = model.forward(prompt, cache)
        prefill = time.perf_counter() - t
        tok = int(torch.argmax(logits[-1]))
        t = time.perf_counter()
        for _ in range(n_decode):
            tok = int(torch.argmax(model.forward([tok], cache)[-1]))
        decode = time.perf_counter() - t
    return {"engine": engine, "load_s": round(load, 2), "prefill_tok_s": round(prompt_len / prefill, 1),
            "decode_tok_s": round(n_decode / decode, 2),
            "peak_rss_mb": peak_rss_mb()}


def expert_cache_comparison(path: Path, n_passages: int, budgets: list[float], threads: int) -> list[dict]:
    """Static frequency placement vs a dynamic LRU/LFU GPU expert cache on routing traces of real text (HotpotQA
    passages): the profile for the static plan is recorded on the first half of the passages, every policy is
    replayed on the second half. Budgets are fractions of all routed experts' bytes (Triton int4 format)."""
    import torch

    from model_runtime.engine.expert_cache import ExpertCache, TraceRecorder, simulate_cache, simulate_static
    from model_runtime.engine.llm import TorchMoELLM
    from model_runtime.engine.placement_plan import config_expert_bytes, plan_placement
    from model_runtime.engine.routing_profile import ProfileRecorder, attach_recorder

    torch.set_num_threads(threads)
    llm = TorchMoELLM(path, kernels="cpu-int8", chat_template="none")
    passages = [json.loads(line)["text"] for _, line in zip(range(n_passages),
                                                            open(ROOT / "../shared/data/hotpotqa/corpus.jsonl"))]
    half = len(passages) // 2
    prof, rec = ProfileRecorder(), TraceRecorder()
    for recorder, texts in ((prof, passages[:half]), (rec, passages[half:])):
        detach = attach_recorder(llm.model, recorder)
        for text in texts:
            tokens = llm.tokenize(text)[:256]
            llm.model.forward(tokens, llm.model.new_cache(len(tokens)))
        detach()
    sizes = config_expert_bytes(llm.model.cfg, 4, 128)
    total = sum(sum(v) for v in sizes.values())
    rows = []
    for frac in budgets:
        budget = int(total * frac)
        plan = plan_placement(prof.profile, sizes, budget, "frequency")
        gpu = {k: plan.gpu_experts(k) for k in sizes}
        row = {"budget": f"{frac:.0%}", "tokens": len(rec.trace),
               "static_hit": round(simulate_static(rec.trace, gpu).hit_rate, 3)}
        for policy in ("lru", "lfu"):
            cache = ExpertCache(budget, sizes, policy)
            cache.preload((k, e) for k, es in gpu.items() for e in es)  # starts from the static plan
            st = simulate_cache(rec.trace, cache)
            row[f"{policy}_hit"] = round(st.hit_rate, 3)
            row[f"{policy}_MB_per_token"] = round(st.bytes_per_token / 1e6, 2)
        rows.append(row)
    llm.close()
    return rows


def peak_rss_mb() -> int:
    """Peak resident memory of this process's address space (VmHWM; ru_maxrss would carry over the parent's
    peak across fork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["embedded", "synthetic-olmoe"])
    ap.add_argument("--kernels", nargs="+", default=["reference", "cpu-int8", "cpu-int4"])
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--olmoe-layers", type=int, default=2)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    ap.add_argument("--no-cache", action="store_true",
                    help="load our engine without the prepared-weight cache (default: a cold then a warm load, "
                    "through a fresh cache folder)")
    ap.add_argument("--expert-cache", metavar="GGUF", nargs="?", const="synthetic-olmoe",
                    help="instead: compare static placement with a dynamic GPU expert cache on routing traces")
    ap.add_argument("--passages", type=int, default=60)
    args = ap.parse_args()
    if args.expert_cache:
        path = (synthetic_olmoe(Path(tempfile.gettempdir()) / f"moesearch-olmoe-{args.olmoe_layers}l.gguf",
                                args.olmoe_layers) if args.expert_cache == "synthetic-olmoe" else Path(args.expert_cache))
        rows = expert_cache_comparison(path, args.passages, [0.1, 0.25, 0.5], args.threads)
        cols = list(rows[0])
        print("| " + " | ".join(cols) + " |\n|" + " --- |" * len(cols))
        for r in rows:
            print("| " + " | ".join(str(r[c]) for c in cols) + " |")
        return
    if args.child:
        print(json.dumps(run_one(args.child[0], args.child[1], args.prompt, args.decode, args.threads,
                                 args.cache_dir)))
        return
    bw, copy_bw = memory_bandwidth_gbs(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.1f}; measured memory bandwidth: read {bw:.1f} GB/s, "
          f"copy {copy_bw:.1f} GB/s (read + write)")
    rows = []
    for name in args.models:
        if name == "embedded":
            from model_runtime.registry import embedded_model_path

            path = embedded_model_path()
            kernels = args.kernels
        elif name == "synthetic-olmoe":
            path = synthetic_olmoe(Path(tempfile.gettempdir()) / f"moesearch-olmoe-{args.olmoe_layers}l.gguf",
                                   args.olmoe_layers)
            kernels = [k for k in args.kernels if k != "reference"]  # float32 experts: 3.2 GB per 2 layers
        else:
            path, kernels = Path(name), args.kernels
        phases = [("llamacpp", "")] + [(k, p) for k in kernels for p in
                                       (["none"] if args.no_cache or k == "reference" else ["cold", "warm"])]
        cache_dir = tempfile.mkdtemp(prefix="moesearch-prepared-")
        for engine, phase in phases:
            cmd = [sys.executable, __file__, "--child", engine, str(path), "--prompt", str(args.prompt),
                   "--decode", str(args.decode), "--threads", str(args.threads)]
            if phase in ("cold", "warm"):
                cmd += ["--cache-dir", cache_dir]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{name} {engine} failed: {r.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(r.stdout.strip().splitlines()[-1])
            row["cache"] = phase
            ab = active_bytes(path, engine)
            row.update(model=name, active_mb=round(ab / 1e6, 1),
                       achieved_gbs=round(ab * row["decode_tok_s"] / 1e9, 2),
                       of_bandwidth=f"{100 * ab * row['decode_tok_s'] / 1e9 / bw:.0f}%")
            rows.append(row)
            print(json.dumps(row), flush=True)
        shutil.rmtree(cache_dir, ignore_errors=True)
    cols = ["model", "engine", "cache", "prefill_tok_s", "decode_tok_s", "active_mb", "achieved_gbs", "of_bandwidth",
            "peak_rss_mb", "load_s"]
    print("\n| " + " | ".join(cols) + " |\n|" + " --- |" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")


if __name__ == "__main__":
    main()
