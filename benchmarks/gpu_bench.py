"""GPU benchmarks of the Triton expert kernels and of CPU/GPU expert placement (issue 8). One script, < 5 minutes.

    .venv/bin/python benchmarks/gpu_bench.py                  # on a machine with a CUDA GPU and triton
    .venv/bin/python benchmarks/gpu_bench.py --record         # also append the tables to benchmarks/RESULTS.md
    .venv/bin/python benchmarks/gpu_bench.py --self-check     # tiny shapes on the CPU (Triton interpreter): checks
                                                              # that every code path runs; its numbers mean nothing

Without a CUDA GPU (and without --self-check) it says so and exits 0.

1. Kernel: one MoE layer's routed experts (gate+up, activation, down, routing weights), at the decode shape (1 token)
   and a prefill shape (512 tokens) of Qwen3-30B-A3B (D 2048, 128 experts of width 768, top-8) and OLMoE-1B-7B
   (D 2048, 64 experts of width 1024, top-8). Methods, all measured in the same run:
   - ``triton-int8`` / ``triton-int4``: our grouped GEMM kernels (weights dequantized inside the kernel);
   - ``torch-bf16-loop``: the baseline, a per-expert loop of PyTorch bf16 matmuls over the tokens of each expert;
   - ``dequant-int8-loop``: dequantize-then-matmul, the int8 weights of each used expert turned into bf16, then
     the same loop.
   Reported: time per layer call, the ratio to ``torch-bf16-loop``, achieved TFLOP/s (2 * pairs * 3 * D * F per
   call) and GB/s (bytes of the stored weights of the experts the call uses, divided by its time), against the
   card's datasheet peaks (dense bf16 tensor TFLOP/s, HBM GB/s) and the device-to-device copy bandwidth measured
   here. Each method's output is checked against ``torch-bf16-loop`` (relative error shown).
2. Whole model: decode tokens/s of a synthetic OLMoE-shaped model (D 2048, 64 experts of width 1024, top-8, 16
   attention heads of 128, vocabulary 50304; ``--layers`` layers, default 4, to keep the build short). Attention,
   router, embeddings and head on the GPU (bf16); routed experts placed all on the GPU (``cuda-int4``), all on the
   CPU (the engine's ``cpu-int8``), or by frequency with 10%, 25%, 50% of the experts on the GPU. The routing is
   skewed like a trained model's: router rows lean, with Zipf-distributed weights, toward a direction that every
   hidden state shares; the "GPU share" column is the fraction of routed choices that the placed experts receive.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {
    "qwen3-30b-a3b": dict(d=2048, f=768, e=128, k=8),
    "olmoe-1b-7b": dict(d=2048, f=1024, e=64, k=8),
}
TINY_SHAPES = {"tiny": dict(d=32, f=48, e=6, k=2)}

# Datasheet peaks: dense bf16 tensor-core TFLOP/s (no sparsity), memory GB/s. Matched in this order by name.
PEAKS: list[tuple[tuple[str, ...], str, float, float]] = [
    (("H200",), "H200", 989.0, 4800.0),
    (("H100", "PCIE"), "H100 PCIe", 756.0, 2000.0),
    (("H100", "NVL"), "H100 NVL", 835.0, 3900.0),
    (("H100",), "H100 SXM", 989.0, 3350.0),
    (("H800",), "H800", 989.0, 3350.0),
    (("GH200",), "GH200", 989.0, 4000.0),
    (("A100", "80GB"), "A100 80GB", 312.0, 2039.0),
    (("A100",), "A100 40GB", 312.0, 1555.0),
    (("L40S",), "L40S", 362.0, 864.0),
    (("L4",), "L4", 121.0, 300.0),
    (("4090",), "RTX 4090", 165.0, 1008.0),
]


def card_peaks(name: str) -> tuple[str, float | None, float | None]:
    """(matched card, peak TFLOP/s, peak GB/s) for a CUDA device name; Nones when the card is not in the table."""
    upper = name.upper()
    for keys, label, tflops, gbs in PEAKS:
        if all(k in upper for k in keys):
            return label, tflops, gbs
    return name, None, None


# ---------------------------------------------------------------------------------------------------- helpers


class Timer:
    def __init__(self, device: "torch.device") -> None:  # noqa: F821
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()

    def measure(self, fn: Callable[[], Any], *, min_time: float, warmup: int = 2, max_iters: int = 200) -> float:
        """Median seconds per call (batches of calls between syncs, so launch overhead is included as in use)."""
        for _ in range(warmup):
            fn()
        self.sync()
        samples: list[float] = []
        start = time.perf_counter()
        while len(samples) < max_iters and (time.perf_counter() - start < min_time or len(samples) < 3):
            t0 = time.perf_counter()
            fn()
            self.sync()
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples)


def random_routing(t: int, e: int, k: int, gen, device):
    import torch

    logits = torch.randn(t, e, generator=gen, device=device)
    w, ids = torch.topk(torch.softmax(logits, -1), k, dim=-1)
    return ids, w


def loop_forward(gate, up, down, x, ids, weights, activation="silu"):
    """The baseline: tokens grouped by expert, one bf16 matmul triple per used expert (index_add into the output).

    ``gate``/``up``/``down`` are per-expert callables returning that expert's matrix (so the same loop serves the
    bf16 weights and the dequantize-on-the-fly variant)."""
    import torch
    import torch.nn.functional as F

    act = F.silu if activation == "silu" else (lambda z: F.gelu(z, approximate="tanh"))
    flat = ids.reshape(-1)
    k = ids.shape[1]
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat.clamp(min=0), minlength=gate.n).tolist()  # one host sync, as any such loop has
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    start = 0
    wflat = weights.reshape(-1)
    for e, c in enumerate(counts):
        if not c:
            continue
        pos = order[start:start + c]
        start += c
        tok = pos // k
        xe = x[tok]
        h = act(xe @ gate(e).T) * (xe @ up(e).T)
        out.index_add_(0, tok, (h @ down(e).T).float() * wflat[pos, None].float())
    return out


class Experts:
    """Per-expert accessors over stacked tensors (``n`` experts), optionally converting each expert on access."""

    def __init__(self, n: int, get: Callable[[int], Any]) -> None:
        self.n = n
        self._get = get

    def __call__(self, e: int):
        return self._get(e)


def rel_err(a, b) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12))


def copy_bandwidth(device, timer: Timer, nbytes: int) -> float:
    """Device-to-device copy GB/s (read + write counted)."""
    import torch

    a = torch.empty(nbytes, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    t = timer.measure(lambda: b.copy_(a), min_time=0.2)
    return 2 * nbytes / t / 1e9


# ---------------------------------------------------------------------------------------------------- 1. kernels


def bench_kernels(device, shapes: dict, token_counts: list[int], timer: Timer, min_time: float,
                  group_size: int, deadline: float) -> list[dict]:
    import torch

    from model_runtime.engine.kernels import ExpertWeights
    from model_runtime.engine.kernels.triton_kernels import TritonExpertKernel, dequantize_weight

    rows = []
    gen = torch.Generator(device=device).manual_seed(0)
    compute = torch.bfloat16 if device.type == "cuda" else torch.float32
    for shape_name, s in shapes.items():
        d, f, e, k = s["d"], s["f"], s["e"], s["k"]
        gate = (torch.randn(e, f, d, generator=gen, device=device) / math.sqrt(d)).to(compute)
        up = (torch.randn(e, f, d, generator=gen, device=device) / math.sqrt(d)).to(compute)
        down = (torch.randn(e, d, f, generator=gen, device=device) / math.sqrt(f)).to(compute)
        weights = ExpertWeights(gate, up, down)
        kernels = {bits: TritonExpertKernel(bits, device, group_size=group_size) for bits in (8, 4)}
        prepared = {}
        for bits, kern in kernels.items():
            try:
                prepared[bits] = kern.prepare(weights)
            except Exception as err:  # report and go on: the rest of the table is still worth having
                prepared[bits] = err
        p8 = prepared[8]

        def deq(q_name: str, s_name: str, e_idx: int, cols: int, _p=p8):
            q = getattr(_p, q_name)[e_idx: e_idx + 1]
            sc = getattr(_p, s_name)[e_idx: e_idx + 1]
            return dequantize_weight(q, sc, 8, _p.group_size)[0, :, :cols].to(compute)

        bf16 = (Experts(e, lambda i: gate[i]), Experts(e, lambda i: up[i]), Experts(e, lambda i: down[i]))
        deq_int8 = None
        if not isinstance(p8, Exception):
            deq_int8 = (Experts(e, lambda i: deq("gate_q", "gate_s", i, d)[:f]),
                        Experts(e, lambda i: deq("up_q", "up_s", i, d)[:f]),
                        Experts(e, lambda i: deq("down_q", "down_s", i, p8.width_padded)[:, :f]))
        scales_per_expert = (2 * f * math.ceil(d / group_size) + d * math.ceil(f / group_size)) * 4
        stored = {"torch-bf16-loop": 3 * f * d * 2, "triton-int8": 3 * f * d + scales_per_expert,
                  "triton-int4": 3 * f * d // 2 + scales_per_expert, "dequant-int8-loop": 3 * f * d + scales_per_expert}
        for t in token_counts:
            if time.monotonic() > deadline:
                rows.append(dict(shape=shape_name, tokens=t, method="(skipped: time budget spent)"))
                continue
            x = torch.randn(t, d, generator=gen, device=device).to(compute)
            ids, rw = random_routing(t, e, k, gen, device)
            used = int(torch.unique(ids).numel())
            pairs = t * k
            flops = 2 * pairs * 3 * d * f
            methods: dict[str, Callable[[], Any]] = {
                "torch-bf16-loop": lambda: loop_forward(*bf16, x, ids, rw),
            }
            if deq_int8 is not None:
                methods["dequant-int8-loop"] = lambda: loop_forward(*deq_int8, x, ids, rw)
            for bits in (8, 4):
                if not isinstance(prepared[bits], Exception):
                    methods[f"triton-int{bits}"] = (lambda _b=bits: kernels[_b].forward(prepared[_b], x, ids, rw))
            truth = methods["torch-bf16-loop"]()
            base_time = None
            for name in ("torch-bf16-loop", "dequant-int8-loop", "triton-int8", "triton-int4"):
                row = dict(shape=shape_name, tokens=t, method=name, experts_used=used)
                if name not in methods:
                    err = prepared[8 if "8" in name else 4]
                    row["error"] = f"{type(err).__name__}: {err}"[:200]
                    rows.append(row)
                    continue
                try:
                    out = methods[name]()
                    row["rel_err_vs_bf16"] = rel_err(out, truth)
                    sec = timer.measure(methods[name], min_time=min_time)
                except Exception as err:
                    row["error"] = f"{type(err).__name__}: {err}"[:200]
                    rows.append(row)
                    continue
                base_time = sec if name == "torch-bf16-loop" else base_time
                row.update(ms=sec * 1e3, tflops=flops / sec / 1e12, gbs=used * stored[name] / sec / 1e9,
                           speedup=(base_time / sec) if base_time else None)
                rows.append(row)
        del gate, up, down, weights, prepared, kernels
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


# ---------------------------------------------------------------------------------------------------- 2. model


class CachedPrepareKernel:
    """Wraps an expert kernel so that each expert is prepared once across the placements of the benchmark.

    Works for kernels whose prepared group keeps one entry per expert in list fields (the engine's CPU kernels);
    any other kernel is prepared normally. Experts are recognised by a few of their weights (random here)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.device = inner.name, inner.device
        self._cache: dict[tuple, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @staticmethod
    def _key(g: Any, u: Any, d: Any) -> tuple:
        return (tuple(g.shape), float(g[0, 0]), float(u[-1, -1]), float(d[0, -1]))

    def prepare(self, w: Any) -> Any:
        from model_runtime.engine.kernels import ExpertWeights

        n = w.n_experts
        parts = []
        for e in range(n):
            g, u, d = w.expert(e)
            key = self._key(g, u, d)
            if key not in self._cache:
                one = ExpertWeights(g[None], u[None], d[None], w.activation)
                self._cache[key] = self.inner.prepare(one)
            parts.append(self._cache[key])
        first = parts[0]
        if dataclasses.is_dataclass(first):
            lists = {fl.name: [] for fl in dataclasses.fields(first) if isinstance(getattr(first, fl.name), list)}
            if lists and all(len(getattr(first, name)) == 1 for name in lists):
                for p in parts:
                    for name in lists:
                        lists[name].extend(getattr(p, name))
                return dataclasses.replace(first, **lists)
        return self.inner.prepare(w)

    def forward(self, prepared, x, topk_ids, topk_weights):
        return self.inner.forward(prepared, x, topk_ids, topk_weights)


@dataclasses.dataclass
class SynthLayer:
    wqkv: Any
    wo: Any
    norm1: Any
    norm2: Any
    moe: Any  # engine MoELayer (routing) then PlacedMoELayer


class SynthModel:
    """Decoder with real attention (KV cache, SDPA) and MoE layers; everything but routed experts on ``device``."""

    def __init__(self, device, *, d, f, e, k, layers, heads, vocab, max_len, skew, seed=0):
        import torch

        from model_runtime.engine.kernels import ExpertWeights, get_kernel
        from model_runtime.engine.moe import MoELayer, RouterSpec

        self.device, self.d, self.heads, self.max_len = device, d, heads, max_len
        self.dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        g = torch.Generator(device=device).manual_seed(seed)
        rnd = lambda *s, std: (torch.randn(*s, generator=g, device=device) * std)  # noqa: E731
        self.embed = rnd(vocab, d, std=1.0).to(self.dtype)
        self.head = rnd(vocab, d, std=1 / math.sqrt(d)).to(self.dtype)
        # the shared direction every hidden state has, and experts leaning toward it with Zipf weights
        self.u = torch.nn.functional.normalize(rnd(d, std=1.0), dim=0)
        ranks = torch.randperm(e, generator=torch.Generator().manual_seed(seed)).to(device).float() + 1
        self.lean = skew / ranks  # expert of rank r: skew / r
        self.layers: list[SynthLayer] = []
        self.expert_weights: list[ExpertWeights] = []
        for _ in range(layers):
            router = rnd(e, d, std=1 / math.sqrt(d)) + self.lean[:, None] * self.u[None, :]
            w = ExpertWeights(rnd(e, f, d, std=1 / math.sqrt(d)).cpu(), rnd(e, f, d, std=1 / math.sqrt(d)).cpu(),
                              rnd(e, d, f, std=1 / math.sqrt(f)).cpu())
            moe = MoELayer(get_kernel("reference"), router=router.float(), routed=[w],
                           spec=RouterSpec(k, "softmax", False))
            self.expert_weights.append(w)
            self.layers.append(SynthLayer(rnd(3 * d, d, std=1 / math.sqrt(d)).to(self.dtype),
                                          rnd(d, d, std=1 / math.sqrt(d)).to(self.dtype),
                                          torch.ones(d, device=device), torch.ones(d, device=device), moe))
        self.reset()

    def reset(self) -> None:
        import torch

        hd = self.d // self.heads
        self.k_cache = [torch.zeros(self.heads, self.max_len, hd, dtype=self.dtype, device=self.device)
                        for _ in self.layers]
        self.v_cache = [torch.zeros_like(c) for c in self.k_cache]
        self.n = 0

    def moe_input(self, h):
        """The MoE input: a normalised hidden state plus the shared direction (the source of the routing skew)."""
        return h.float() + self.u

    def step(self, token: int) -> int:
        import torch
        import torch.nn.functional as F

        x = self.embed[token][None].float()
        hd = self.d // self.heads
        for i, layer in enumerate(self.layers):
            h = F.rms_norm(x, (self.d,), layer.norm1).to(self.dtype)
            q, k, v = (h @ layer.wqkv.T).split(self.d, dim=-1)
            self.k_cache[i][:, self.n] = k.view(self.heads, hd)
            self.v_cache[i][:, self.n] = v.view(self.heads, hd)
            att = F.scaled_dot_product_attention(q.view(self.heads, 1, hd), self.k_cache[i][:, : self.n + 1],
                                                 self.v_cache[i][:, : self.n + 1])
            x = x + (att.reshape(1, self.d) @ layer.wo.T).float()
            m = self.moe_input(F.rms_norm(x, (self.d,), layer.norm2))
            x = x + layer.moe(m).float()
        self.n += 1
        logits = F.rms_norm(x, (self.d,)).to(self.dtype) @ self.head.T
        return int(torch.argmax(logits))

    def profile(self, tokens: int, seed: int = 1):
        """A routing profile from a calibration batch of hidden states (random, plus the shared direction)."""
        import torch

        from model_runtime.engine.routing_profile import ProfileRecorder, _global_ids, layer_key

        rec = ProfileRecorder()
        g = torch.Generator(device=self.device).manual_seed(seed)
        for i, layer in enumerate(self.layers):
            moe = layer.moe.layer if hasattr(layer.moe, "groups") else layer.moe
            h = torch.nn.functional.rms_norm(torch.randn(tokens, self.d, generator=g, device=self.device), (self.d,))
            rec.record(layer_key(i), _global_ids(moe, moe.route(self.moe_input(h))), moe.n_routed)
        return rec.profile


def usable_cpu_kernel(get_kernel: Callable[[str], Any]) -> Any:
    """The engine's fastest CPU kernel that works on this host (cpu-int8 needs x86 fbgemm; ARM hosts fall back)."""
    import torch

    from model_runtime.engine.kernels import ExpertWeights

    probe = ExpertWeights(torch.randn(2, 32, 64), torch.randn(2, 32, 64), torch.randn(2, 64, 32))
    for name in ("cpu-int8", "cpu-int4", "reference"):
        try:
            kernel = get_kernel(name)
            kernel.forward(kernel.prepare(probe), torch.randn(3, 64), torch.tensor([[0, 1]] * 3), torch.ones(3, 2))
            return kernel
        except Exception:
            continue
    raise RuntimeError("no CPU expert kernel works here")


def bench_model(device, timer: Timer, *, layers: int, shape: dict, vocab: int, heads: int, gpu_bits: int,
                group_size: int, fractions: list[float], decode_tokens: int, deadline: float,
                gpu_kernel_factory: Callable[[], Any], cpu_kernel: Any) -> tuple[list[dict], dict]:
    from model_runtime.engine.placement import PlacedMoELayer, expert_nbytes, plan_placement

    d, f, e, k = shape["d"], shape["f"], shape["e"], shape["k"]
    t0 = time.perf_counter()
    model = SynthModel(device, d=d, f=f, e=e, k=k, layers=layers, heads=heads, vocab=vocab,
                       max_len=decode_tokens + 16, skew=float(shape.get("skew", 3.0)))
    build_s = time.perf_counter() - t0
    profile = model.profile(512)
    sizes = {str(i): [expert_nbytes(f, d, gpu_bits, group_size)] * e for i in range(layers)}
    total = sum(sum(v) for v in sizes.values())
    routing_layers = [layer.moe for layer in model.layers]
    gpu_kernel = gpu_kernel_factory()
    cached_cpu = CachedPrepareKernel(cpu_kernel)
    # all-cpu first: it is the baseline, and it prepares every expert for the CPU once (the others reuse them)
    plans = [("all-cpu", plan_placement(profile, sizes, 0, "all-cpu")),
             ("all-gpu", plan_placement(profile, sizes, None, "all-gpu"))]
    for frac in fractions:
        plans.append((f"frequency {int(frac * 100)}%",
                      plan_placement(profile, sizes, int(total * frac), "frequency")))
    rows = []
    for label, plan in plans:
        if time.monotonic() > deadline:
            rows.append(dict(placement=label, error="skipped: time budget spent"))
            continue
        row = dict(placement=label, experts_on_gpu=f"{plan.gpu_fraction() * 100:.0f}%",
                   gpu_gib=plan.gpu_bytes / 2**30)
        share = []
        for i, key in enumerate(sizes):
            freq = profile.frequency(key)
            on = plan.gpu_experts(key)
            share.append(sum(freq[j] for j in on) / max(sum(freq), 1e-12))
        row["gpu_share_of_routing"] = statistics.mean(share)
        try:
            t_place = time.perf_counter()
            for i, layer in enumerate(model.layers):
                rl = routing_layers[i]
                layer.moe = PlacedMoELayer(rl, [model.expert_weights[i]], None, plan.devices[str(i)], gpu_kernel,
                                           cached_cpu).route_on(device)
            row["place_s"] = time.perf_counter() - t_place
            model.reset()
            tok = 1
            for _ in range(4):  # warm-up (compiles the kernels)
                tok = model.step(tok)
            timer.sync()
            start = time.perf_counter()
            for _ in range(decode_tokens - 4):
                tok = model.step(tok)
            timer.sync()
            row["decode_tok_s"] = (decode_tokens - 4) / (time.perf_counter() - start)
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"[:200]
        rows.append(row)
    base = next((r.get("decode_tok_s") for r in rows if r["placement"] == "all-cpu"), None)
    for r in rows:
        if base and r.get("decode_tok_s"):
            r["vs_all_cpu"] = r["decode_tok_s"] / base
    return rows, dict(build_s=build_s, layers=layers, **shape)


# ---------------------------------------------------------------------------------------------------- report


def fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e4 else f"{v:.3g}"
    return str(v)


def markdown(info: dict, kernel_rows: list[dict], model_rows: list[dict], model_info: dict) -> str:
    peak_t, peak_b = info.get("peak_tflops"), info.get("peak_gbs")
    out = [f"## GPU expert kernels and placement ({info['card']}, {info['date']})", "",
           f"`{info['command']}` on {info['device_name']} (peaks used: {fmt(peak_t, 0)} bf16 TFLOP/s, "
           f"{fmt(peak_b, 0)} GB/s datasheet; measured copy bandwidth {fmt(info.get('copy_gbs'), 0)} GB/s), "
           f"torch {info['torch']}, triton {info['triton']}, CPU: {info['cpu']}.", "",
           "### Kernel: one MoE layer's routed experts", "",
           "| shape | tokens | method | ms | vs bf16 loop | TFLOP/s | % peak | weight GB/s | % peak | % copy | "
           "rel. err vs bf16 |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in kernel_rows:
        if "ms" not in r:
            out.append(f"| {r['shape']} | {r['tokens']} | {r['method']} | {r.get('error', '-')} |  |  |  |  |  |  |  |")
            continue
        pt = r["tflops"] / peak_t * 100 if peak_t else None
        pb = r["gbs"] / peak_b * 100 if peak_b else None
        pc = r["gbs"] / info["copy_gbs"] * 100 if info.get("copy_gbs") else None
        out.append(f"| {r['shape']} | {r['tokens']} | {r['method']} | {fmt(r['ms'], 3)} | {fmt(r.get('speedup'))}x | "
                   f"{fmt(r['tflops'], 3)} | {fmt(pt, 1)} | {fmt(r['gbs'], 0)} | {fmt(pb, 1)} | {fmt(pc, 1)} | "
                   f"{fmt(r.get('rel_err_vs_bf16'), 4)} |")
    out += ["", f"### Whole model: decode tokens/s, synthetic OLMoE-shaped model, {model_info.get('layers')} layers "
            f"(GPU experts: cuda-int4; CPU experts: {model_info.get('cpu_kernel', '-')})",
            "", "| placement | experts on GPU | GPU GiB | GPU share of routing | decode tok/s | vs all-CPU |",
            "| --- | --- | --- | --- | --- | --- |"]
    for r in model_rows:
        if "decode_tok_s" not in r:
            out.append(f"| {r['placement']} | {r.get('experts_on_gpu', '-')} | | | {r.get('error', '-')} | |")
            continue
        out.append(f"| {r['placement']} | {r['experts_on_gpu']} | {fmt(r['gpu_gib'])} | "
                   f"{fmt(r['gpu_share_of_routing'] * 100, 0)}% | {fmt(r['decode_tok_s'], 1)} | "
                   f"{fmt(r.get('vs_all_cpu'))}x |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--self-check", action="store_true", help="tiny shapes on the CPU under the Triton interpreter")
    ap.add_argument("--layers", type=int, default=4, help="layers of the synthetic model (default 4)")
    ap.add_argument("--decode-tokens", type=int, default=36)
    ap.add_argument("--budget-s", type=float, default=270.0, help="stop starting new measurements after this")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--record", action="store_true", help="append the tables to benchmarks/RESULTS.md")
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--skip-kernels", action="store_true")
    args = ap.parse_args(argv)

    if args.self_check:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    from model_runtime.engine.kernels.triton_kernels import triton_runnable

    if args.self_check:
        device = torch.device("cpu")
    else:
        ok, why = triton_runnable("cuda")
        if not ok:
            print(f"gpu_bench: nothing measured: {why}. Run it on a machine with a CUDA GPU "
                  "(or --self-check for a CPU dry run).")
            return 0
        device = torch.device("cuda")
    started = time.monotonic()
    deadline = started + args.budget_s
    timer = Timer(device)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu (self-check: Triton interpreter)"
    card, peak_t, peak_b = card_peaks(name) if device.type == "cuda" else ("cpu", None, None)
    import triton

    info = dict(card=card, device_name=name, peak_tflops=peak_t, peak_gbs=peak_b, torch=torch.__version__,
                triton=getattr(triton, "__version__", "?"), cpu=f"{platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} cores", date=time.strftime("%Y-%m-%d"),
                command="python benchmarks/gpu_bench.py" + (" --self-check" if args.self_check else ""))
    info["copy_gbs"] = copy_bandwidth(device, timer, (1 << 30) if device.type == "cuda" else (1 << 20))
    print(f"gpu_bench: {name}; copy {info['copy_gbs']:.0f} GB/s", flush=True)

    if args.self_check:
        shapes, tokens, min_time, group = TINY_SHAPES, [1, 20], 0.0, 16
        model_shape, vocab, heads, layers, decode = dict(d=32, f=48, e=8, k=2), 64, 2, 2, 8
    else:
        shapes, tokens, min_time, group = SHAPES, [1, 512], 0.3, 128
        model_shape, vocab, heads, layers, decode = (dict(SHAPES["olmoe-1b-7b"]), 50304, 16, args.layers,
                                                     args.decode_tokens)

    kernel_rows: list[dict] = []
    if not args.skip_kernels:
        kernel_rows = bench_kernels(device, shapes, tokens, timer, min_time, group, deadline - 120)
        for r in kernel_rows:
            print("kernel", json.dumps(r), flush=True)
    model_rows, model_info = [], {}
    if not args.skip_model:
        from model_runtime.engine.kernels import get_kernel
        from model_runtime.engine.kernels.triton_kernels import TritonExpertKernel

        cpu_kernel = usable_cpu_kernel(get_kernel)
        print(f"gpu_bench: CPU-side experts on the {cpu_kernel.name} kernel", flush=True)
        model_rows, model_info = bench_model(
            device, timer, layers=layers, shape=model_shape, vocab=vocab, heads=heads, gpu_bits=4,
            group_size=group, fractions=[0.10, 0.25, 0.50], decode_tokens=decode, deadline=deadline,
            gpu_kernel_factory=lambda: TritonExpertKernel(4, device, group_size=group), cpu_kernel=cpu_kernel)
        model_info["cpu_kernel"] = cpu_kernel.name
        for r in model_rows:
            print("model", json.dumps(r), flush=True)
    report = markdown(info, kernel_rows, model_rows, model_info)
    print()
    print(report)
    print(f"gpu_bench: done in {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(dict(info=info, kernels=kernel_rows, model=model_rows,
                                             model_info=model_info), indent=1))
    if args.record and not args.self_check:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
