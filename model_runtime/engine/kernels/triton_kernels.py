"""``cuda-int8`` and ``cuda-int4``: Triton expert kernels with weight-only int8 / int4 quantization.

``prepare`` quantizes a group's float32 expert weights once (symmetric, one float32 scale per ``group_size``
consecutive input features of each output row; int4 packed two per byte) and moves them to the kernel's device.
``forward`` runs

- prefill (more than ``decode_max_tokens`` tokens): ``moe_align_block_size`` sorts the token-expert pairs by expert
  and pads each expert's run to ``BLOCK_M``; a grouped GEMM computes gate and up together with the activation, a
  second grouped GEMM the down projection times the routing weight;
- decode: no sorting, one program per token-expert pair and block of outputs (matrix-vector products).

Weights are dequantized inside the GEMMs (integer tile to the activation dtype, block result times the group's
scale). Pairs whose expert id is ``-1`` contribute nothing; experts that receive no token cost nothing.

What is supported: any number of groups (each group is prepared separately, so groups of different widths are
independent); inside one group, experts of different widths (pass ``ExpertWeights`` whose ``gate``/``up``/``down``
are lists of per-expert tensors, or stacked tensors plus a ``widths`` attribute): they are stored zero-padded to the
widest and each expert's GEMMs stop at its own width. Activations ``silu`` and ``gelu_tanh``.

Triton is imported only when a kernel is first used, so this module imports (and registers its kernels) on machines
without Triton or CUDA. ``device="cpu"`` runs the same Triton programs under Triton's interpreter: slow, for tests.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch

from model_runtime.errors import ModelRuntimeError

from model_runtime.engine.kernels.base import ExpertKernel, ExpertWeights


ACTIVATIONS = {"silu": 0, "gelu_tanh": 1}
JIT_IMPORT_ALLOWED = False  # see triton_jit: it is imported through _jit_module() only


class GPUUnavailableError(ModelRuntimeError):
    """A CUDA expert kernel was asked for where it cannot run (no GPU, or no triton)."""

    user_facing = True
    exit_code = 3


# ---------------------------------------------------------------------------------------------------- availability


def triton_available() -> bool:
    """True when the ``triton`` package is installed (it may still lack a GPU: see ``triton_runnable``)."""
    return importlib.util.find_spec("triton") is not None


def triton_runnable(device: str | torch.device = "cuda") -> tuple[bool, str]:
    """Whether the Triton kernels can run on ``device``, and if not, why (one line)."""
    if not triton_available():
        return False, "the triton package is not installed (pip install 'moesearch[gpu]')"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return False, "no CUDA GPU is available to PyTorch"
        return True, ""
    if dev.type == "cpu":
        if "triton" in sys.modules and "model_runtime.engine.kernels.triton_jit" not in sys.modules \
                and os.environ.get("TRITON_INTERPRET", "0") not in ("1", "true", "True"):
            return False, "triton was imported without TRITON_INTERPRET=1, so its programs cannot run on CPU"
        return True, ""
    return False, f"the Triton kernels run on cuda (or cpu under the interpreter), not on {dev.type}"


def _jit_module():
    """The Triton programs; on CPU, under the interpreter (which must be chosen before the programs are defined)."""
    name = "model_runtime.engine.kernels.triton_jit"
    if name in sys.modules:
        return sys.modules[name]
    global JIT_IMPORT_ALLOWED
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    JIT_IMPORT_ALLOWED = True
    return importlib.import_module(name)


# ---------------------------------------------------------------------------------------------------- quantization


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def quantize_weight(w: torch.Tensor, bits: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``w [E, N, K]`` along ``K`` in groups: returns (``q``, ``scales [E, N, Kp // group_size]``).

    ``Kp`` is ``K`` rounded up to ``group_size`` (zero padded). int8: ``q [E, N, Kp]`` int8 in ``[-127, 127]``.
    int4: ``q [E, N, Kp // 2]`` uint8, ``k`` even in the low nibble, ``k`` odd in the high one, each ``v + 8`` for
    ``v`` in ``[-8, 7]``. Symmetric: value = ``v * scale``; ``scale = max|w| / qmax`` per group.
    """
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, not {bits}")
    if group_size % 2:
        raise ValueError("group_size must be even")
    e, n, k = w.shape
    kp = _round_up(k, group_size)
    w = torch.nn.functional.pad(w.float(), (0, kp - k))
    grouped = w.reshape(e, n, kp // group_size, group_size)
    qmax = 127 if bits == 8 else 7
    scale = grouped.abs().amax(dim=-1) / qmax
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = torch.round(grouped / scale[..., None])
    if bits == 8:
        q = q.clamp(-127, 127).to(torch.int8).reshape(e, n, kp)
    else:
        q = (q.clamp(-8, 7) + 8).to(torch.uint8).reshape(e, n, kp)
        q = (q[..., 0::2] | (q[..., 1::2] << 4)).contiguous()
    return q, scale.contiguous()


def dequantize_weight(q: torch.Tensor, scales: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """The float32 values ``quantize_weight`` stands for, ``[E, N, Kp]``."""
    if bits == 8:
        v = q.float()
    else:
        low = (q & 0xF).to(torch.int16) - 8
        high = (q >> 4).to(torch.int16) - 8
        v = torch.stack((low, high), dim=-1).reshape(*q.shape[:-1], q.shape[-1] * 2).float()
    e, n, kp = v.shape
    return (v.reshape(e, n, kp // group_size, group_size) * scales[..., None]).reshape(e, n, kp)


# ---------------------------------------------------------------------------------------------------- alignment


def moe_align_block_size(topk_ids: torch.Tensor, num_experts: int, block_m: int
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort the token-expert pairs by expert, each expert's run padded to a multiple of ``block_m``.

    ``topk_ids [T, K]`` (``-1``: no expert). Pair ``p = t * K + k``. Returns

    - ``sorted_ids`` int32 ``[max_padded]``: pair indices, expert by expert, padding slots hold ``T * K``;
    - ``block_expert`` int32 ``[max_padded // block_m]``: the expert of each block, ``-1`` past the end;
    - ``num_padded`` int32 ``[1]``: how many slots are in use.

    ``max_padded`` (``T*K + E*(block_m-1)`` rounded up) depends only on the shapes, so nothing waits for the GPU;
    blocks past ``num_padded`` exit at once. Experts with no pair get no block; ``-1`` pairs go nowhere.
    """
    flat = topk_ids.reshape(-1).to(torch.int64)
    pairs = flat.numel()
    dev = flat.device
    key = torch.where(flat >= 0, flat, torch.full_like(flat, num_experts))
    counts = torch.bincount(key, minlength=num_experts + 1)[:num_experts]
    padded = (counts + block_m - 1) // block_m * block_m
    pad_end = torch.cumsum(padded, 0)
    pad_start = pad_end - padded
    count_start = torch.cumsum(counts, 0) - counts
    order = torch.sort(key, stable=True).indices
    sorted_key = key[order]
    valid = sorted_key < num_experts
    expert = sorted_key.clamp(max=num_experts - 1)
    rank = torch.arange(pairs, device=dev) - count_start[expert]
    max_padded = _round_up(pairs + num_experts * (block_m - 1), block_m)
    dest = torch.where(valid, pad_start[expert] + rank, torch.full_like(rank, max_padded))
    sorted_ids = torch.full((max_padded + 1,), pairs, dtype=torch.int32, device=dev)
    sorted_ids[dest] = order.to(torch.int32)  # the invalid pairs all land on the extra slot, cut off below
    sorted_ids = sorted_ids[:max_padded].contiguous()
    block_start = torch.arange(0, max_padded, block_m, device=dev)
    block_expert = torch.searchsorted(pad_end, block_start, right=True)
    total = pad_end[-1:] if num_experts else torch.zeros(1, dtype=torch.int64, device=dev)
    block_expert = torch.where(block_start < total, block_expert, torch.full_like(block_expert, -1))
    return sorted_ids, block_expert.to(torch.int32).contiguous(), total.to(torch.int32).contiguous()


# ---------------------------------------------------------------------------------------------------- the kernel


@dataclass
class TritonPrepared:
    """A group's experts, quantized for the Triton programs, on the kernel's device."""

    gate_q: torch.Tensor  # [E, Fp, Dp]   (int8, or uint8 with Dp // 2 columns for int4)
    up_q: torch.Tensor
    down_q: torch.Tensor  # [E, D, Fp]
    gate_s: torch.Tensor  # [E, Fp, Dp // group] float32
    up_s: torch.Tensor
    down_s: torch.Tensor  # [E, D, Fp // group]
    widths: torch.Tensor  # [E] int32: each expert's own width
    num_experts: int
    dim: int  # D
    dim_padded: int  # Dp
    width_padded: int  # Fp
    bits: int
    group_size: int
    activation: str

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in
                   (self.gate_q, self.up_q, self.down_q, self.gate_s, self.up_s, self.down_s))

    def dequantized(self) -> ExpertWeights:
        """Float32 weights equal to what the kernels compute with (for checks), zero-padded to the widest expert."""
        g = dequantize_weight(self.gate_q.cpu(), self.gate_s.cpu(), self.bits, self.group_size)[..., : self.dim]
        u = dequantize_weight(self.up_q.cpu(), self.up_s.cpu(), self.bits, self.group_size)[..., : self.dim]
        d = dequantize_weight(self.down_q.cpu(), self.down_s.cpu(), self.bits, self.group_size)
        return ExpertWeights(gate=g.contiguous(), up=u.contiguous(), down=d.contiguous(), activation=self.activation)


def stack_expert_weights(w: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """``gate [E, F, D]``, ``up``, ``down [E, D, F]`` float32 and each expert's width.

    ``w.gate`` etc. are stacked tensors (all experts ``F`` wide, or as wide as ``w.widths`` says, zero-padded), or
    lists of per-expert tensors of different widths (stacked here, zero-padded to the widest).
    """
    if isinstance(w.gate, torch.Tensor):
        gate, up, down = w.gate.float(), w.up.float(), w.down.float()
        widths = getattr(w, "widths", None)
        widths = [int(x) for x in widths] if widths is not None else [gate.shape[1]] * gate.shape[0]
        return gate, up, down, widths
    widths = [int(g.shape[0]) for g in w.gate]
    fmax = max(widths) if widths else 0
    pad_rows = lambda t: torch.nn.functional.pad(t.float(), (0, 0, 0, fmax - t.shape[0]))  # noqa: E731
    pad_cols = lambda t: torch.nn.functional.pad(t.float(), (0, fmax - t.shape[1]))  # noqa: E731
    gate = torch.stack([pad_rows(t) for t in w.gate])
    up = torch.stack([pad_rows(t) for t in w.up])
    down = torch.stack([pad_cols(t) for t in w.down])
    return gate, up, down, widths


class TritonExpertKernel(ExpertKernel):
    """Weight-only int8/int4 Triton expert kernel (see the module's docstring)."""

    # Block sizes on a GPU: tensor-core tiles for the grouped GEMMs; for decode (matrix-vector products) narrower
    # output blocks, so that one token's few experts still spread over the GPU's SMs, and longer reduction blocks.
    GPU_BLOCKS = dict(block_n=64, block_k=64, decode_block_n=32, decode_block_k=128)
    INTERPRETER_BLOCKS = dict(block_n=16, block_k=16, decode_block_n=16, decode_block_k=16)

    def __init__(self, bits: int = 8, device: str | torch.device = "cuda", *, group_size: int = 128,
                 compute_dtype: torch.dtype | None = None, decode_max_tokens: int = 4,
                 block_m: int | None = None, block_n: int | None = None, block_k: int | None = None,
                 decode_block_n: int | None = None, decode_block_k: int | None = None) -> None:
        if bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, not {bits}")
        self.bits = bits
        self.name = f"cuda-int{bits}"
        self.device = str(device)
        self.group_size = group_size
        on_gpu = torch.device(self.device).type == "cuda"
        # bf16 tensor-core GEMMs on the GPU; float32 under the interpreter (exact, for the checks).
        self.compute_dtype = compute_dtype or (torch.bfloat16 if on_gpu else torch.float32)
        self.decode_max_tokens = decode_max_tokens
        self.block_m = block_m  # None: chosen per call from the tokens per expert (16, 32 or 64)
        blocks = self.GPU_BLOCKS if on_gpu else self.INTERPRETER_BLOCKS
        self.block_n = block_n or blocks["block_n"]
        self.block_k = self._fit_k(block_k or blocks["block_k"])
        self.decode_block_n = decode_block_n or block_n or blocks["decode_block_n"]
        self.decode_block_k = self._fit_k(decode_block_k or block_k or blocks["decode_block_k"])

    def _fit_k(self, block_k: int) -> int:
        block_k = min(block_k, self.group_size)
        if self.group_size % block_k:
            raise ValueError(f"block_k ({block_k}) must divide group_size ({self.group_size})")
        return block_k

    def __repr__(self) -> str:
        return f"TritonExpertKernel(bits={self.bits}, device={self.device!r}, group_size={self.group_size})"

    # -- preparation

    def prepare(self, w: Any) -> TritonPrepared:
        ok, why = triton_runnable(self.device)
        if not ok:
            raise GPUUnavailableError(f"the {self.name} expert kernel cannot run: {why}; "
                                      "use the cpu kernels (MOESEARCH_TORCH_KERNELS=cpu)")
        dev = torch.device(self.device)
        if isinstance(getattr(w, "gate", None), list):  # per-expert tensors of different widths: stacked, padded
            gate, up, down, widths = stack_expert_weights(w)
            w = ExpertWeights(gate, up, down, getattr(w, "activation", "silu"), widths)
        e, f, d = w.n_experts, w.width, w.dim
        widths = [int(x) for x in w.widths] if getattr(w, "widths", None) is not None else [f] * e
        g = self.group_size
        fp, dp = _round_up(max(f, 1), g), _round_up(d, g)
        cols = lambda k: k if self.bits == 8 else k // 2  # noqa: E731
        qdt = torch.int8 if self.bits == 8 else torch.uint8
        gq, uq = (torch.empty(e, fp, cols(dp), dtype=qdt, device=dev) for _ in range(2))
        dq = torch.empty(e, d, cols(fp), dtype=qdt, device=dev)
        gs, us = (torch.empty(e, fp, dp // g, device=dev) for _ in range(2))
        ds = torch.empty(e, d, fp // g, device=dev)
        for i in range(e):  # one expert in float32 at a time, quantized where the kernel runs (fast on a GPU)
            eg, eu, ed = (t.to(dev, torch.float32) for t in w.expert(i))
            # Pad the width (rows of gate/up, columns of down) to the group size: the down GEMM reduces over it.
            (gq[i], gs[i]), (uq[i], us[i]) = (
                (t[0], s_[0]) for t, s_ in (quantize_weight(torch.nn.functional.pad(x, (0, 0, 0, fp - f))[None],
                                                            self.bits, g) for x in (eg, eu)))
            q, sc = quantize_weight(torch.nn.functional.pad(ed, (0, fp - f))[None], self.bits, g)
            dq[i], ds[i] = q[0], sc[0]
        return TritonPrepared(
            gate_q=gq, up_q=uq, down_q=dq, gate_s=gs, up_s=us, down_s=ds,
            widths=torch.tensor(widths, dtype=torch.int32, device=dev),
            num_experts=e, dim=d, dim_padded=dp, width_padded=fp,
            bits=self.bits, group_size=g, activation=getattr(w, "activation", "silu"),
        )

    # -- forward

    def _pick_block_m(self, pairs: int, num_experts: int) -> int:
        if self.block_m:
            return self.block_m
        per_expert = pairs / max(num_experts, 1)
        return 16 if per_expert <= 16 else 32 if per_expert <= 64 else 64

    def forward(self, prepared: TritonPrepared, x: torch.Tensor, topk_ids: torch.Tensor,
                topk_weights: torch.Tensor) -> torch.Tensor:
        jit = _jit_module()
        p = prepared
        out_device, out_dtype = x.device, x.dtype
        dev = torch.device(self.device)
        t, k = topk_ids.shape
        if t == 0 or p.num_experts == 0:
            return torch.zeros(t, p.dim, dtype=out_dtype, device=out_device)
        xs = x.to(device=dev, dtype=self.compute_dtype).contiguous()
        ids = topk_ids.to(device=dev, dtype=torch.int64).contiguous()
        rw = topk_weights.to(device=dev, dtype=torch.float32).contiguous()
        pairs = t * k
        h = torch.zeros(pairs, p.width_padded, dtype=self.compute_dtype, device=dev)
        out = torch.zeros(pairs, p.dim, dtype=torch.float32, device=dev)
        act = ACTIVATIONS[p.activation]
        bn, bk, g = self.block_n, self.block_k, p.group_size
        launch = {"num_warps": 4} if dev.type == "cuda" else {}
        if t <= self.decode_max_tokens:
            bn, bk = self.decode_block_n, self.decode_block_k
            jit.moe_gate_up_decode_kernel[(pairs, triton_cdiv(p.width_padded, bn))](
                xs, p.gate_q, p.up_q, p.gate_s, p.up_s, h, ids, p.widths,
                p.dim, p.dim_padded,
                xs.stride(0), p.gate_q.stride(0), p.gate_q.stride(1), p.gate_s.stride(0), p.gate_s.stride(1),
                h.stride(0),
                TOP_K=k, GROUP=g, BITS=p.bits, ACT=act, BLOCK_N=bn, BLOCK_K=bk, **launch)
            jit.moe_down_decode_kernel[(pairs, triton_cdiv(p.dim, bn))](
                h, p.down_q, p.down_s, out, ids, rw, p.widths,
                p.dim,
                h.stride(0), p.down_q.stride(0), p.down_q.stride(1), p.down_s.stride(0), p.down_s.stride(1),
                out.stride(0),
                GROUP=g, BITS=p.bits, BLOCK_N=bn, BLOCK_K=bk, **launch)
        else:
            bm = self._pick_block_m(pairs, p.num_experts)
            sorted_ids, block_expert, num_padded = moe_align_block_size(ids, p.num_experts, bm)
            blocks = block_expert.numel()
            if dev.type == "cuda":
                launch["num_stages"] = 3
            jit.moe_gate_up_prefill_kernel[(blocks, triton_cdiv(p.width_padded, bn))](
                xs, p.gate_q, p.up_q, p.gate_s, p.up_s, h,
                sorted_ids, block_expert, num_padded, p.widths,
                pairs, p.dim, p.dim_padded,
                xs.stride(0), p.gate_q.stride(0), p.gate_q.stride(1), p.gate_s.stride(0), p.gate_s.stride(1),
                h.stride(0),
                TOP_K=k, GROUP=g, BITS=p.bits, ACT=act, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, **launch)
            jit.moe_down_prefill_kernel[(blocks, triton_cdiv(p.dim, bn))](
                h, p.down_q, p.down_s, out, rw,
                sorted_ids, block_expert, num_padded, p.widths,
                pairs, p.dim,
                h.stride(0), p.down_q.stride(0), p.down_q.stride(1), p.down_s.stride(0), p.down_s.stride(1),
                out.stride(0),
                GROUP=g, BITS=p.bits, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, **launch)
        y = out.view(t, k, p.dim).sum(dim=1)
        return y.to(device=out_device, dtype=out_dtype)


def triton_cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


# ---------------------------------------------------------------------------------------------------- registry


def make_kernel(bits: int, device: str | torch.device = "cuda", **options: Any) -> TritonExpertKernel:
    """A ``cuda-int{bits}`` kernel on ``device`` (default the GPU). Building one never fails; ``prepare`` says, as a
    user-facing error, when it cannot run (no GPU, no triton). ``device="cpu"`` runs under the interpreter (tests)."""
    return TritonExpertKernel(bits=bits, device=device, **options)


def register() -> list[str]:
    """Register ``cuda-int8`` and ``cuda-int4`` with the engine's kernel registry; never imports Triton.

    Returns the names registered (none when the registry is not there). Whether they can run is asked of
    ``triton_runnable`` (and ``prepare`` raises with the reason when they cannot).
    """
    try:
        from model_runtime.engine.kernels import base
    except ImportError:
        return []
    register_kernel = getattr(base, "register_kernel", None)
    if register_kernel is None:
        return []
    names = []
    for bits in (8, 4):
        name = f"cuda-int{bits}"
        register_kernel(name, lambda *args, _bits=bits, **kw: make_kernel(_bits, *args, **kw))
        names.append(name)
    return names


register()

__all__ = [
    "GPUUnavailableError", "TritonExpertKernel", "TritonPrepared", "dequantize_weight", "make_kernel", "moe_align_block_size",
    "quantize_weight", "register", "stack_expert_weights", "triton_available", "triton_runnable",
]

