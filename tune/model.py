"""A differentiable transformer for the tune steps: the dense parent, or its MoE form, with optional LoRA adapters.

One sequence at a time (no batch, no KV cache): profiling, distillation and training run whole sequences. The
maths follow the engine (model_runtime/engine/model.py) so that a built GGUF computes the same function:
pre-norm blocks, GQA attention with NEOX RoPE, and the FFN as a `MoEFFN` whose neurons are ordered
[shared group | routed expert 0 | expert 1 | ...]; a dense FFN is the case with no routed experts.
Routing is the engine's sigmoid gating: weights sigmoid(x . r_e) for the top-k experts, no renormalisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tune.parent import ParentConfig, layer_weights, open_parent, read_config


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return (lambda t: F.gelu(t, approximate="tanh")) if name == "gelu_tanh" else F.silu


class LoRA(nn.Module):
    """Low-rank update B @ A * (alpha / rank) of a weight [out, in] (Hu et al., 2021); B starts at zero."""

    def __init__(self, n_out: int, n_in: int, rank: int, alpha: float, gen: torch.Generator | None = None):
        super().__init__()
        self.A = nn.Parameter(torch.randn(rank, n_in, generator=gen) / n_in ** 0.5)
        self.B = nn.Parameter(torch.zeros(n_out, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.A.T) @ self.B.T * self.scale

    def delta(self) -> torch.Tensor:
        """[out, in]: what the adapter adds to the weight."""
        return (self.B @ self.A * self.scale).detach()


def linear(x: torch.Tensor, w: torch.Tensor, lora: LoRA | None, bias: torch.Tensor | None = None) -> torch.Tensor:
    y = x @ w.T
    if bias is not None:
        y = y + bias
    return y + lora(x) if lora is not None else y


class MoEFFN(nn.Module):
    """FFN over permuted neurons: gate/up [F, D], down [D, F]; the first `shared` neurons are always on, the rest
    form routed experts of `widths` (in group order); a router [E, D] picks `top_k` of them per token."""

    def __init__(self, gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor, act: str, shared: int | None = None,
                 widths: list[int] | None = None, router: torch.Tensor | None = None, top_k: int = 0):
        super().__init__()
        self.register_buffer("gate", gate, persistent=False)
        self.register_buffer("up", up, persistent=False)
        self.register_buffer("down", down, persistent=False)
        self.act_name, self.act = act, activation(act)
        self.widths = list(widths or [])
        self.shared = gate.shape[0] - sum(self.widths) if shared is None else shared
        assert self.shared + sum(self.widths) == gate.shape[0], "shared + expert widths must cover every neuron"
        self.router = nn.Parameter(router.clone()) if router is not None else None
        self.top_k = top_k
        self.lora: nn.ModuleDict = nn.ModuleDict()
        self.capture: Callable | None = None  # called with (x, h) during a forward pass (profiling)
        self.last_balance: torch.Tensor | None = None
        self.perm: torch.Tensor | None = None  # the parent's neuron index of each of these neurons

    @property
    def n_experts(self) -> int:
        return len(self.widths)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """h [T, F] = act(x gate^T) * (x up^T): the input of `down` (what the profile records)."""
        g = linear(x, self.gate, self.lora["gate"] if "gate" in self.lora else None)
        u = linear(x, self.up, self.lora["up"] if "up" in self.lora else None)
        return self.act(g) * u

    def expert_weights(self, x: torch.Tensor, unit: bool = False, top_k: int | None = None) -> torch.Tensor:
        """[T, E]: sigmoid router weight for each token's top-k experts, 0 elsewhere (1 instead of the sigmoid
        with `unit`). Also stores the Switch-Transformer load-balancing term in `last_balance`."""
        logits = x @ self.router.T
        probs = torch.sigmoid(logits)
        k = min(top_k or self.top_k, self.n_experts)
        idx = torch.topk(logits, k, dim=-1).indices
        mask = torch.zeros_like(probs).scatter_(-1, idx, 1.0)
        share = probs / probs.sum(-1, keepdim=True)
        # Fedus et al. 2021 (eq. 4): E * sum_e (fraction routed to e) * (mean router share of e); 1 when uniform
        self.last_balance = self.n_experts * (mask.mean(0) / k * share.mean(0)).sum()
        return mask if unit else mask * probs

    def neuron_scale(self, w: torch.Tensor) -> torch.Tensor:
        """[T, E] expert weights -> [T, F] per-neuron weights (1 on the shared group)."""
        widths = torch.tensor(self.widths, device=w.device)
        return torch.cat([torch.ones(w.shape[0], self.shared, dtype=w.dtype), w.repeat_interleave(widths, 1)], 1)

    def forward(self, x: torch.Tensor, unit: bool = False, top_k: int | None = None) -> torch.Tensor:
        h = self.hidden(x)
        if self.capture is not None:
            self.capture(x, h)
        if self.n_experts:
            h = h * self.neuron_scale(self.expert_weights(x, unit, top_k))
        return linear(h, self.down, self.lora["down"] if "down" in self.lora else None)


class Block(nn.Module):
    def __init__(self, w: dict[str, torch.Tensor], cfg: ParentConfig, swa: bool):
        super().__init__()
        self.w = {k: v for k, v in w.items() if not k.startswith("ffn_") or k == "ffn_norm"}
        self.swa = swa
        self.ffn = MoEFFN(w["ffn_gate"], w["ffn_up"], w["ffn_down"], cfg.activation)
        self.lora: nn.ModuleDict = nn.ModuleDict()

    def attention(self, x: torch.Tensor, cfg: ParentConfig, rope, mask) -> torch.Tensor:
        w, lo, t, hd = self.w, self.lora, x.shape[0], cfg.head_dim
        q = linear(x, w["attn_q"], lo["q"] if "q" in lo else None, w.get("attn_q.bias")).view(t, cfg.n_head, hd)
        k = linear(x, w["attn_k"], lo["k"] if "k" in lo else None, w.get("attn_k.bias")).view(t, cfg.n_head_kv, hd)
        v = linear(x, w["attn_v"], lo["v"] if "v" in lo else None, w.get("attn_v.bias")).view(t, cfg.n_head_kv, hd)
        if cfg.qk_norm:
            q, k = rms_norm(q, w["attn_q_norm"], cfg.rms_eps), rms_norm(k, w["attn_k_norm"], cfg.rms_eps)
        q, k = rope_neox(q, rope), rope_neox(k, rope)
        rep = cfg.n_head // cfg.n_head_kv
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1),
                                             attn_mask=mask, scale=cfg.attn_scale)
        return linear(out.transpose(0, 1).reshape(t, -1), w["attn_output"], lo["o"] if "o" in lo else None)

    def forward(self, x: torch.Tensor, cfg: ParentConfig, rope, mask, **ffn_kw) -> torch.Tensor:
        w = self.w
        h = self.attention(rms_norm(x, w["attn_norm"], cfg.rms_eps), cfg, rope, mask)
        if cfg.post_norms:
            h = rms_norm(h, w["post_attention_norm"], cfg.rms_eps)
        x = x + h
        h = self.ffn(rms_norm(x, w["ffn_norm"], cfg.rms_eps), **ffn_kw)
        if cfg.post_norms:
            h = rms_norm(h, w["post_ffw_norm"], cfg.rms_eps)
        return x + h


def rope_neox(x: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x [T, H, hd]; rotates pairs (i, i + hd/2) (GGML's NEOX mode, as gemma3 and qwen2 use)."""
    cos, sin = table
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def rope_table(t: int, hd: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv = base ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2 / hd)
    ang = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float()[:, None, :], ang.sin().float()[:, None, :]


class TuneModel(nn.Module):
    """The parent transformer with replaceable FFNs. `forward(tokens, logits_at)` -> logits [len(logits_at), V]."""

    def __init__(self, cfg: ParentConfig, tok_embd: torch.Tensor, output: torch.Tensor | None,
                 output_norm: torch.Tensor, blocks: list[Block]):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("tok_embd", tok_embd, persistent=False)
        self.register_buffer("head", output if output is not None else tok_embd, persistent=False)
        self.register_buffer("output_norm", output_norm, persistent=False)
        self.blocks = nn.ModuleList(blocks)

    @property
    def ffns(self) -> list[MoEFFN]:
        return [b.ffn for b in self.blocks]

    def hidden_states(self, tokens: torch.Tensor, **ffn_kw) -> torch.Tensor:
        cfg = self.cfg
        tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
        t = tokens.shape[0]
        x = self.tok_embd[tokens] * cfg.embed_scale
        pos = torch.arange(t)
        causal = pos[None, :] <= pos[:, None]
        window = causal & ((pos[:, None] - pos[None, :]) < max(cfg.sliding_window, 1))
        masks = {s: torch.zeros(t, t).masked_fill_(~(window if s else causal), float("-inf")) for s in (False, True)}
        ropes = {False: rope_table(t, cfg.head_dim, cfg.rope_base), True: rope_table(t, cfg.head_dim,
                                                                                      cfg.rope_base_swa)}
        for blk in self.blocks:
            x = blk(x, cfg, ropes[blk.swa], masks[blk.swa], **ffn_kw)
        return rms_norm(x, self.output_norm, cfg.rms_eps)

    def forward(self, tokens, logits_at: torch.Tensor | None = None, **ffn_kw) -> torch.Tensor:
        h = self.hidden_states(tokens, **ffn_kw)
        if logits_at is not None:
            h = h[logits_at]
        return h @ self.head.T


def load_dense(path: str | Path, max_layers: int | None = None) -> TuneModel:
    """The dense parent from its GGUF, weights dequantized to float32, every parameter frozen."""
    f = open_parent(path)
    cfg = read_config(f, max_layers)
    blocks = [Block(layer_weights(f, i, cfg), cfg, cfg.swa_layers[i]) for i in range(cfg.n_layer)]
    model = TuneModel(cfg, f.tensor("token_embd.weight"), f.tensor("output.weight", optional=True),
                      f.tensor("output_norm.weight"), blocks)
    model.requires_grad_(False)
    return model
