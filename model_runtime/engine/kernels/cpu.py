"""CPU expert kernels with weight-only quantization, quantized once at load from the dequantized GGUF weights.

Tokens are grouped by expert (one sort per layer), then each expert runs two matmuls: the fused gate+up projection
[2F, D] and the down projection [D, F]. Batched prefill and single-token decode use the same code path.

- `cpu-int8`: int8 weights with one scale per output row (a group of the whole row), run by PyTorch's fbgemm/x86
  dynamic-quantized linear (`torch.ops.quantized.linear_dynamic`): activations are quantized per call to uint8,
  products accumulate in int32. Measured on this machine's AVX2 CPU it is 3x faster than float32 for decode and 5x
  for prefill, while `torch.ops.aten._weight_int8pack_mm` was 10-40x slower than float32 (no AVX2 path).
- `cpu-int4`: int4 weights, asymmetric, with a scale and zero point per group of 32 input elements, run by
  `torch.ops.aten._weight_int4pack_mm_for_cpu` with bfloat16 activations (its float32 path is much slower).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from model_runtime.engine.kernels.base import (
    ExpertKernel,
    ExpertWeights,
    LinearKernel,
    activation_fn,
    group_by_expert,
)


@dataclass
class PreparedGroup:
    gate_up: list[Any]  # per expert: prepared [2F, D]
    down: list[Any]  # per expert: prepared [D, F]
    width: int
    activation: str


PACK_ROWS = 16384  # fbgemm packs a weight taller than this in row blocks: measured 2-3.5x faster to pack for Gemma's
# 262k-row head (1.4-2.8 s instead of 4.9-6.0 s, 1 thread) at the same call time (one call per block, outputs joined)


def _linear_dynamic(x: torch.Tensor, packed: Any) -> torch.Tensor:
    if isinstance(packed, list):  # row blocks; x is quantized with the same per-tensor scale for each
        return torch.cat([torch.ops.quantized.linear_dynamic(x, p, True) for p in packed], 1)
    return torch.ops.quantized.linear_dynamic(x, packed, True)


@dataclass
class Int8Weight:
    packed: Any  # fbgemm packed int8 weight [N, K] with per-row scales (a list of row blocks when N > PACK_ROWS)
    cols: torch.Tensor  # the same int8 values, transposed [K, N], for the outlier columns
    scale: torch.Tensor  # [N] float32


def _int8_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: (q [N, K] int8, scale [N] float32) with w ~ q * scale (in place where possible:
    loading keeps one weight's temporaries at a time)."""
    w = w.float()
    scale = w.abs().amax(1).div_(127.0).clamp_(min=1e-12)
    return torch.div(w, scale[:, None]).round_().clamp_(-127, 127).to(torch.int8), scale


class Int8Linear(LinearKernel):
    """Per-row int8 weights; activations quantized per call by fbgemm, except outlier input channels.

    A per-tensor 7-bit activation quantization is ruined by the few input channels whose values are many times
    the rest (Gemma's normalised activations have them), so channels above `outlier_ratio` x the RMS of the
    activations are zeroed before the fbgemm call and multiplied in float32 with their int8 weight columns
    (the LLM.int8() decomposition, Dettmers et al. 2022).
    """

    name = "int8"
    cacheable = True  # `state`/`restore` for the prepared-weight cache; bump `cache_version` when they change
    cache_version = 1
    outlier_ratio = 3.0
    # Searched on every call: a fixed set recorded by a calibration run was tried and is much worse on Gemma 3
    # (decode KL 0.020-0.097 instead of 0.003: the outlier channels of the attention-output and down-projection
    # inputs change from token to token).

    def prepare(self, w: torch.Tensor) -> Int8Weight:
        q, scale = _int8_rows(w)
        return self._pack(lambda i, j: q[i:j], scale, q.T.contiguous())

    def prepare_chunks(self, chunks, shape: tuple[int, int]) -> Int8Weight:
        # quantized chunk by chunk into one int8 buffer: the float32 weight is never whole (Gemma's head: 670 MB)
        q, scale = torch.empty(shape, dtype=torch.int8), torch.empty(shape[0])
        row = 0
        for c in chunks:
            q[row:row + c.shape[0]], scale[row:row + c.shape[0]] = _int8_rows(c)
            row += c.shape[0]
        return self._pack(lambda i, j: q[i:j], scale, q.T.contiguous())

    @staticmethod
    def _pack(rows, scale: torch.Tensor, cols: torch.Tensor) -> Int8Weight:
        """fbgemm-pack the int8 weight whose rows i:j `rows(i, j)` gives, PACK_ROWS at a time; `cols` = its [K, N]."""
        n = scale.shape[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = [torch.ops.quantized.linear_prepack(torch._make_per_channel_quantized_tensor(
                rows(i, min(i + PACK_ROWS, n)), scale[i:i + PACK_ROWS].double(),
                torch.zeros(min(PACK_ROWS, n - i), dtype=torch.long), 0), None)
                for i in range(0, n, PACK_ROWS)]
        return Int8Weight(blocks[0] if len(blocks) == 1 else blocks, cols, scale)

    @staticmethod
    def state(prepared: Int8Weight) -> dict:
        """Plain tensors to save: the transposed int8 [K, N] and the row scales (fbgemm's packing is redone)."""
        return {"cols": prepared.cols, "scale": prepared.scale}

    @staticmethod
    def adopt(prepared: Int8Weight, state: dict) -> None:
        """Use `state`'s (mapped) copy of the transposed int8 instead of `prepared`'s own."""
        prepared.cols = state["cols"]

    def restore(self, state: dict) -> Int8Weight:
        """From `state` (its tensors memory-mapped from the cache: `cols` stays so; only the packed copy is made,
        one row block at a time). Paging `cols` out after packing was tried: 90 MB less peak memory on Gemma 3
        270M, but the first prefill ran at half speed while the outlier rows were read back."""
        cols = state["cols"]
        return self._pack(lambda i, j: cols[:, i:j].T.contiguous(), state["scale"], cols)

    def __call__(self, prepared: Int8Weight, x):
        if x.dtype != torch.float32 or not x.is_contiguous():
            x = x.float().contiguous()
        # outlier channels: max |x| over tokens above ratio x RMS (RMS = ||x|| / sqrt(numel))
        thr = torch.linalg.vector_norm(x) * (self.outlier_ratio / x.numel() ** 0.5)
        cols = torch.nonzero((x[0].abs() if x.shape[0] == 1 else x.abs().amax(0)) > thr).view(-1)
        if cols.numel():
            xo = x.index_select(1, cols)
            y = _linear_dynamic(x.index_fill(1, cols, 0.0), prepared.packed)
            return torch.addcmul(y, xo @ prepared.cols.index_select(0, cols).float(), prepared.scale)
        return _linear_dynamic(x, prepared.packed)


@dataclass
class Int4Weight:
    packed: torch.Tensor
    scales_zeros: torch.Tensor  # [D/G, N, 2] bfloat16
    group: int
    n: int
    pad: int = 0


class Int4Linear(LinearKernel):
    """int4 weights, asymmetric, a scale and zero point per group of 32 input elements, run by
    `torch.ops.aten._weight_int4pack_mm_for_cpu` with bfloat16 activations (its float32 path is much slower)."""

    name = "int4"
    cacheable = True
    cache_version = 1
    group_size = 32

    @staticmethod
    def state(prepared: Int4Weight) -> dict:
        return {"packed": prepared.packed, "sz": prepared.scales_zeros, "group": prepared.group, "n": prepared.n,
                "pad": prepared.pad}

    @staticmethod
    def adopt(prepared: Int4Weight, state: dict) -> None:
        prepared.packed, prepared.scales_zeros = state["packed"], state["sz"]

    @staticmethod
    def restore(state: dict) -> Int4Weight:
        return Int4Weight(state["packed"], state["sz"], state["group"], state["n"], state["pad"])

    def prepare(self, w: torch.Tensor) -> Int4Weight:
        w = w.float().contiguous()
        n, k = w.shape
        g = self.group_size
        pad = (-k) % g  # zero columns up to a whole group; the activations are padded to match
        if pad:
            w = torch.nn.functional.pad(w, (0, pad))
            k += pad
        wg = w.view(n, k // g, g)
        lo, hi = wg.amin(-1), wg.amax(-1)
        scale = ((hi - lo) / 15.0).clamp(min=1e-10)
        q = torch.round((wg - lo[..., None]) / scale[..., None]).clamp(0, 15).to(torch.int32).view(n, k)
        zero = lo + 8.0 * scale  # the op computes (q - 8) * scale + zero
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        sz = torch.stack([scale, zero], -1).transpose(0, 1).contiguous().to(torch.bfloat16)
        return Int4Weight(packed, sz, g, n, pad)

    def __call__(self, prepared: Int4Weight, x):
        if prepared.pad:
            x = torch.nn.functional.pad(x, (0, prepared.pad))
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x.to(torch.bfloat16).contiguous(), prepared.packed,
                                                       prepared.group, prepared.scales_zeros)
        return y.float()


class _QuantCPUKernel(ExpertKernel):
    device = "cpu"
    expert_linear: LinearKernel

    @property
    def linear(self) -> LinearKernel:
        return Int8Linear()

    @property
    def cacheable(self) -> bool:
        return getattr(self.expert_linear, "cacheable", False)

    @property
    def cache_version(self) -> str:
        return f"{self.expert_linear.cache_version}.{Int8Linear.cache_version}"

    def state(self, prepared: PreparedGroup) -> dict:
        lin = self.expert_linear
        return {"gate_up": [lin.state(p) for p in prepared.gate_up], "down": [lin.state(p) for p in prepared.down],
                "width": prepared.width, "activation": prepared.activation}

    def adopt(self, prepared: PreparedGroup, state: dict) -> None:
        for p, st in zip(prepared.gate_up + prepared.down, state["gate_up"] + state["down"]):
            self.expert_linear.adopt(p, st)

    def restore(self, state: dict) -> PreparedGroup:
        lin = self.expert_linear
        return PreparedGroup([lin.restore(s) for s in state["gate_up"]], [lin.restore(s) for s in state["down"]],
                             state["width"], state["activation"])

    def prepare(self, w: ExpertWeights) -> PreparedGroup:
        """Quantize the group one expert at a time; through the prepared-weight cache when `w` (a `GGUFExperts`)
        carries one (`w.cache`, keyed by its tensor names)."""
        from model_runtime.engine.prepared_cache import cached

        return cached(getattr(w, "cache", None), "ffn:" + "|".join(getattr(w, "names", ())), lambda: self._prepare(w),
                      self)

    def _prepare(self, w: ExpertWeights) -> PreparedGroup:
        gu, dn = [], []
        for e in range(w.n_experts):  # one expert in float32 at a time (w may read it from the file now)
            gate, up, down = w.expert(e)
            gu.append(self.expert_linear.prepare(torch.cat([gate, up], 0)))
            del gate, up
            dn.append(self.expert_linear.prepare(down))
        return PreparedGroup(gu, dn, w.width, w.activation)

    def dense(self, prepared: PreparedGroup, x: torch.Tensor) -> torch.Tensor:
        h = self.expert_linear(prepared.gate_up[0], x)
        f = prepared.width
        return self.expert_linear(prepared.down[0], activation_fn(prepared.activation)(h[:, :f]) * h[:, f:])

    def forward(self, prepared: PreparedGroup, x, topk_ids, topk_weights):
        act = activation_fn(prepared.activation)
        f, lin = prepared.width, self.expert_linear
        if topk_ids.shape == (x.shape[0], 1) and x.shape[0] > 0 and len(prepared.gate_up) == 1 \
                and bool((topk_ids == 0).all()):
            h = lin(prepared.gate_up[0], x)
            return lin(prepared.down[0], act(h[:, :f]) * h[:, f:]) * topk_weights.float()
        out = torch.zeros(x.shape, dtype=torch.float32)
        for e, tok, w in group_by_expert(topk_ids, topk_weights, len(prepared.gate_up)):
            h = lin(prepared.gate_up[e], x[tok])
            y = lin(prepared.down[e], act(h[:, :f]) * h[:, f:])
            out.index_add_(0, tok, y * w[:, None].float())
        return out


class CPUInt8Kernel(_QuantCPUKernel):
    """int8 experts, attention and head (`Int8Linear`)."""

    name = "cpu-int8"
    expert_linear = Int8Linear()


class CPUInt4Kernel(_QuantCPUKernel):
    """int4 experts; attention projections and the output head stay int8 (`linear`): they are a small part
    of a MoE model's active bytes, and at 4 bits Gemma's tied embedding head alone costs a KL of 0.05."""

    name = "cpu-int4"
    expert_linear = Int4Linear()
