"""The transformer that every supported architecture shares, and its KV cache, on one device (`loader` reads it).

Block (pre-norm): h = x + [post_norm](attn(attn_norm(x))); out = h + [post_norm](ffn(ffn_norm(h))).
Attention: a fused q/k/v projection (+bias), optional QK-norm (per head or over all heads), NEOX RoPE, GQA, causal mask
(with a sliding window on the layers the architecture marks), output projection. FFN: a `MoELayer`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from model_runtime.engine.arch import ModelConfig
from model_runtime.engine.kernels import ExpertKernel, get_kernel
from model_runtime.engine.moe import MoELayer


@dataclass
class Block:
    attn_norm: torch.Tensor
    qkv: Any  # fused q/k/v projection [qd + 2 kd, D], prepared by the kernel's linear kernel
    wo: Any  # output projection [D, qd], prepared likewise
    bqkv: torch.Tensor | None  # fused q/k/v bias (qwen2moe)
    q_norm: torch.Tensor | None
    k_norm: torch.Tensor | None
    post_attn_norm: torch.Tensor | None
    ffn_norm: torch.Tensor
    post_ffw_norm: torch.Tensor | None
    ffn: Any  # MoELayer, or a placed layer with the same call
    swa: bool

    def to(self, device: str) -> "Block":
        """Norms and biases on `device` (the prepared weights are already where their kernel put them)."""
        mv = lambda t: t.to(device) if isinstance(t, torch.Tensor) else t  # noqa: E731
        return dataclasses.replace(self, attn_norm=mv(self.attn_norm), bqkv=mv(self.bqkv), q_norm=mv(self.q_norm),
                                   k_norm=mv(self.k_norm), post_attn_norm=mv(self.post_attn_norm),
                                   ffn_norm=mv(self.ffn_norm), post_ffw_norm=mv(self.post_ffw_norm))


class KVCache:
    """Per layer K and V [n_head_kv, capacity, head_dim] on `device` in `dtype`; capacity grows by doubling up to
    `max_len`."""

    def __init__(self, cfg: ModelConfig, max_len: int, device: str = "cpu", dtype: torch.dtype = torch.float32):
        self.max_len, self.n, self.device, self.dtype = max_len, 0, device, dtype
        cap = min(256, max_len)
        shape = (cfg.n_head_kv, cap, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]

    def ensure(self, length: int) -> None:
        cap = self.k[0].shape[1]
        if length <= cap:
            return
        new = min(self.max_len, max(length, 2 * cap))
        for store in (self.k, self.v):
            for i, t in enumerate(store):
                grown = torch.zeros(t.shape[0], new, t.shape[2], device=self.device, dtype=self.dtype)
                grown[:, :cap] = t
                store[i] = grown

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """x * w / sqrt(mean(x^2) + eps) over the last dimension (one fused op)."""
    return F.rms_norm(x, (x.shape[-1],), w, eps)


def rope_table(pos: torch.Tensor, n_rot: int, base: float, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [T, 1, n_rot/2] for positions `pos` (angles in float64, like GGML's theta computation)."""
    half = n_rot // 2
    inv = base ** (-torch.arange(0, half, dtype=torch.float64) * 2 / n_rot)
    ang = (pos.double()[:, None] * scale) * inv[None, :]
    return ang.cos().float()[:, None, :], ang.sin().float()[:, None, :]


def rope_neox(x: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor], n_rot: int) -> torch.Tensor:
    """x [T, H, hd]; rotates pairs (i, i + n_rot/2) of the first n_rot dims (GGML's NEOX mode)."""
    cos, sin = table
    half = n_rot // 2
    x1, x2 = x[..., :half], x[..., half:n_rot]
    out = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)
    return torch.cat([out, x[..., n_rot:]], -1) if n_rot < x.shape[-1] else out


class Transformer:
    """The model on `device`: embedding lookup, blocks, output norm and head; FFNs on their kernels' devices.

    `embed` is a row-lookup table (`gguf_file.QuantizedRows`: rows dequantized on lookup); `head` is the output
    head prepared by `kernel.linear` (from the embedding table when `tied`)."""

    def __init__(self, cfg: ModelConfig, embed: Any, head: Any, output_norm: torch.Tensor, blocks: list[Block],
                 kernel: ExpertKernel, *, tied: bool = False, device: str = "cpu"):
        self.cfg, self.embed, self.head, self.tied, self.kernel = cfg, embed, head, tied, kernel
        self.device = str(device)
        self.linear = kernel.linear
        self.output_norm = output_norm.to(self.device)
        self.blocks = [b.to(self.device) for b in blocks]
        # per-head norms: q's weight on the q heads, k's on the k heads, [n_head + n_kv, hd], to norm both at once
        self._qk_norm = [torch.stack([b.q_norm] * cfg.n_head + [b.k_norm] * cfg.n_head_kv)
                         if cfg.qk_norm == "head" else None for b in self.blocks]

    def with_kernel(self, kernel: str | ExpertKernel) -> "Transformer":
        """The same model with its FFNs, attention and output head on another kernel (needs float32 weights: a
        model loaded with the `reference` kernel). The embedding table is shared."""
        kern = get_kernel(kernel) if isinstance(kernel, str) else kernel
        if self.kernel.name != "reference":
            raise ValueError("with_kernel needs a model loaded with the reference kernel")
        lin = kern.linear
        blocks = []
        for b in self.blocks:
            f = b.ffn
            ffn = MoELayer(kern, shared=f.shared, shared_gate=f.shared_gate, router=f.router, routed=f.routed,
                           spec=f.spec)
            blocks.append(dataclasses.replace(b, ffn=ffn, qkv=lin.prepare(b.qkv), wo=lin.prepare(b.wo)))
        return Transformer(self.cfg, self.embed, lin.prepare(self.head), self.output_norm, blocks, kern,
                           tied=self.tied, device=self.device)

    def new_cache(self, max_len: int | None = None) -> KVCache:
        return KVCache(self.cfg, max_len or self.cfg.context_length, self.device)

    def _masks(self, pos: torch.Tensor, length: int) -> dict[bool, torch.Tensor | None]:
        """Additive attention masks [T, L] for global and sliding-window layers; None where nothing is masked
        (a single new token sees every cached key, or its window, which `_attention` slices instead)."""
        cfg = self.cfg
        if pos.shape[0] == 1:
            return {False: None, True: None}
        kpos = torch.arange(length, device=self.device)
        causal = kpos[None, :] <= pos[:, None]
        window = causal & ((pos[:, None] - kpos[None, :]) < cfg.sliding_window)
        zeros = torch.zeros(causal.shape, device=self.device)
        return {False: zeros.masked_fill(~causal, float("-inf")), True: zeros.masked_fill(~window, float("-inf"))}

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor | list[int], cache: KVCache, *, all_logits: bool = False) -> torch.Tensor:
        """Run `tokens` at positions cache.n.. ; returns logits [T, V] (all_logits) or [1, V] (last position),
        float32 on the model's device. Raises ContextOverflowError past the cache's max_len."""
        cfg = self.cfg
        tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
        t = tokens.shape[0]
        start = cache.n
        if start + t > cache.max_len:
            from model_runtime.errors import ContextOverflowError

            raise ContextOverflowError(f"{start + t} tokens exceed the context of {cache.max_len}; "
                                       "shorten the prompt or raise MOESEARCH_N_CTX")
        cache.ensure(start + t)
        pos = torch.arange(start, start + t)
        x = self.embed.lookup(tokens).to(self.device)
        if cfg.embed_scale != 1.0:
            x = x * cfg.embed_scale
        masks = self._masks(pos.to(self.device), start + t)
        ropes = {False: rope_table(pos, cfg.rope_dim, cfg.rope_base, cfg.rope_scale),
                 True: rope_table(pos, cfg.rope_dim, cfg.rope_base_swa, 1.0)}
        ropes = {k: (c.to(self.device), s.to(self.device)) for k, (c, s) in ropes.items()}
        for i, blk in enumerate(self.blocks):
            h = self._attention(i, blk, rms_norm(x, blk.attn_norm, cfg.rms_eps), ropes[blk.swa], cache,
                                masks[blk.swa])
            if blk.post_attn_norm is not None:
                h = rms_norm(h, blk.post_attn_norm, cfg.rms_eps)
            x = x + h
            h = blk.ffn(rms_norm(x, blk.ffn_norm, cfg.rms_eps))
            if blk.post_ffw_norm is not None:
                h = rms_norm(h.to(self.device), blk.post_ffw_norm, cfg.rms_eps)
            x = x + h.to(self.device)
        cache.n = start + t
        if not all_logits:
            x = x[-1:]
        return self.linear(self.head, rms_norm(x, self.output_norm, cfg.rms_eps))

    def _attention(self, i: int, blk: Block, x, rope, cache: KVCache, mask) -> torch.Tensor:
        cfg = self.cfg
        t, hd, nh, nkv = x.shape[0], cfg.head_dim, cfg.n_head, cfg.n_head_kv
        qd, kd = nh * hd, nkv * hd
        qkv = self.linear(blk.qkv, x)
        if blk.bqkv is not None:
            qkv = qkv + blk.bqkv
        if cfg.qk_norm == "full":
            q, k = rms_norm(qkv[:, :qd], blk.q_norm, cfg.rms_eps), rms_norm(qkv[:, qd:qd + kd], blk.k_norm, cfg.rms_eps)
            qk = torch.cat([q, k], -1).view(t, nh + nkv, hd)
        else:
            qk = qkv[:, :qd + kd].reshape(t, nh + nkv, hd)
        if cfg.qk_norm == "head":  # q and k heads normalised together: one op, then their own weights
            qk = F.rms_norm(qk, (hd,), None, cfg.rms_eps) * self._qk_norm[i]
        qk = rope_neox(qk, rope, cfg.rope_dim)  # q and k rotated together
        q, k, v = qk[:, :nh], qk[:, nh:], qkv[:, qd + kd:].view(t, nkv, hd)
        s, e = cache.n, cache.n + t
        cache.k[i][:, s:e] = k.transpose(0, 1)
        cache.v[i][:, s:e] = v.transpose(0, 1)
        first = max(0, e - cfg.sliding_window) if (blk.swa and mask is None) else 0  # one token: its window
        keys, vals = cache.k[i][None, :, first:e], cache.v[i][None, :, first:e]
        out = F.scaled_dot_product_attention(q.transpose(0, 1)[None].to(keys.dtype), keys, vals, attn_mask=mask,
                                             scale=cfg.attn_scale, enable_gqa=nh != nkv)
        return self.linear(blk.wo, out[0].transpose(0, 1).reshape(t, qd).float())
