"""The transformer that every supported architecture shares, its weights loaded from GGUF, and its KV cache.

Block (pre-norm): h = x + [post_norm](attn(attn_norm(x))); out = h + [post_norm](ffn(ffn_norm(h))).
Attention: q/k/v projections (+bias), optional QK-norm (per head or over all heads), NEOX RoPE, GQA, causal mask
(with a sliding window on the layers the architecture marks), output projection. FFN: a `MoELayer`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model_runtime.engine.arch import ModelConfig, config_from_gguf
from model_runtime.engine.gguf_file import GGUFModelFile
from model_runtime.engine.kernels import ExpertKernel, ExpertWeights, get_kernel
from model_runtime.engine.moe import MoELayer, RouterSpec


@dataclass
class Block:
    attn_norm: torch.Tensor
    wq: torch.Tensor
    wk: torch.Tensor
    wv: torch.Tensor
    wo: torch.Tensor
    bq: torch.Tensor | None
    bk: torch.Tensor | None
    bv: torch.Tensor | None
    q_norm: torch.Tensor | None
    k_norm: torch.Tensor | None
    post_attn_norm: torch.Tensor | None
    ffn_norm: torch.Tensor
    post_ffw_norm: torch.Tensor | None
    ffn: MoELayer
    swa: bool


class KVCache:
    """Per layer K and V [n_head_kv, capacity, head_dim]; capacity grows by doubling up to `max_len`."""

    def __init__(self, cfg: ModelConfig, max_len: int):
        self.max_len = max_len
        self.n = 0
        cap = min(256, max_len)
        shape = (cfg.n_head_kv, cap, cfg.head_dim)
        self.k = [torch.zeros(shape) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape) for _ in range(cfg.n_layer)]

    def ensure(self, length: int) -> None:
        cap = self.k[0].shape[1]
        if length <= cap:
            return
        new = min(self.max_len, max(length, 2 * cap))
        for store in (self.k, self.v):
            for i, t in enumerate(store):
                grown = torch.zeros(t.shape[0], new, t.shape[2])
                grown[:, :cap] = t
                store[i] = grown

    def nbytes(self) -> int:
        return sum(t.numel() * 4 for t in self.k + self.v)


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


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
    def __init__(self, cfg: ModelConfig, tok_embd: torch.Tensor, output: torch.Tensor | None,
                 output_norm: torch.Tensor, blocks: list[Block], kernel: ExpertKernel, quantize_attention: bool = True):
        self.cfg = cfg
        self.output_norm = output_norm
        self.kernel = kernel
        self.head = kernel.head_prepare(output if output is not None else tok_embd)
        # With a quantized kernel, the attention projections (fused q/k/v, and the output) run on it too, and the
        # embedding table is kept in bfloat16 (one row is read per token); `reference` keeps everything float32.
        self.quantized = kernel.name != "reference"
        self.tok_embd = tok_embd.to(torch.bfloat16) if self.quantized else tok_embd
        self._attn: list[tuple] | None = None
        if self.quantized and quantize_attention:
            import dataclasses

            self._attn = [(kernel.head_prepare(torch.cat([b.wq, b.wk, b.wv], 0)), kernel.head_prepare(b.wo))
                          for b in blocks]
            blocks = [dataclasses.replace(b, wq=None, wk=None, wv=None, wo=None) for b in blocks]
        self.blocks = blocks

    def with_kernel(self, kernel: str | ExpertKernel) -> "Transformer":
        """The same model with its FFNs and output head on another kernel (needs float32 weights: a model loaded
        with the `reference` kernel). Attention weights and embeddings are shared, not copied."""
        import dataclasses

        kern = get_kernel(kernel) if isinstance(kernel, str) else kernel
        if self.kernel.name != "reference":
            raise ValueError("with_kernel needs a model loaded with the reference kernel")
        blocks = []
        for b in self.blocks:
            f = b.ffn
            ffn = MoELayer(kern, shared=f.shared, shared_gate=f.shared_gate, router=f.router, routed=f.routed,
                           spec=f.spec)
            blocks.append(dataclasses.replace(b, ffn=ffn))
        return Transformer(self.cfg, self.tok_embd, self.head if self.head is not self.tok_embd else None,
                           self.output_norm, blocks, kern)

    def new_cache(self, max_len: int | None = None) -> KVCache:
        return KVCache(self.cfg, max_len or self.cfg.context_length)

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor | list[int], cache: KVCache, *, all_logits: bool = False) -> torch.Tensor:
        """Run `tokens` at positions cache.n.. ; returns logits [T, V] (all_logits) or [1, V] (last position)."""
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
        x = self.tok_embd[tokens].float()
        if cfg.embed_scale != 1.0:
            x = x * cfg.embed_scale
        kpos = torch.arange(start + t)
        causal = kpos[None, :] <= pos[:, None]
        masks: dict[bool, torch.Tensor] = {}
        ropes = {False: rope_table(pos, cfg.rope_dim, cfg.rope_base, cfg.rope_scale),
                 True: rope_table(pos, cfg.rope_dim, cfg.rope_base_swa, 1.0)}
        for i, blk in enumerate(self.blocks):
            if blk.swa not in masks:
                allowed = causal & ((pos[:, None] - kpos[None, :]) < cfg.sliding_window) if blk.swa else causal
                masks[blk.swa] = torch.zeros(allowed.shape).masked_fill_(~allowed, float("-inf"))
            h = self._attention(i, blk, rms_norm(x, blk.attn_norm, cfg.rms_eps), ropes[blk.swa], cache,
                                masks[blk.swa])
            if blk.post_attn_norm is not None:
                h = rms_norm(h, blk.post_attn_norm, cfg.rms_eps)
            x = x + h
            h = blk.ffn(rms_norm(x, blk.ffn_norm, cfg.rms_eps))
            if blk.post_ffw_norm is not None:
                h = rms_norm(h, blk.post_ffw_norm, cfg.rms_eps)
            x = x + h
        cache.n = start + t
        if not all_logits:
            x = x[-1:]
        return self.kernel.head_linear(self.head, rms_norm(x, self.output_norm, cfg.rms_eps))

    def _attention(self, i: int, blk: Block, x, rope, cache: KVCache, mask) -> torch.Tensor:
        cfg = self.cfg
        t, hd = x.shape[0], cfg.head_dim
        qd, kd = cfg.n_head * hd, cfg.n_head_kv * hd
        if self._attn is not None:
            qkv = self.kernel.head_linear(self._attn[i][0], x)
            q, k, v = qkv[:, :qd], qkv[:, qd:qd + kd], qkv[:, qd + kd:]
        else:
            q, k, v = x @ blk.wq.T, x @ blk.wk.T, x @ blk.wv.T
        if blk.bq is not None:
            q, k, v = q + blk.bq, k + blk.bk, v + blk.bv
        if cfg.qk_norm == "full":
            q, k = rms_norm(q, blk.q_norm, cfg.rms_eps), rms_norm(k, blk.k_norm, cfg.rms_eps)
        q = q.view(t, cfg.n_head, hd)
        k = k.view(t, cfg.n_head_kv, hd)
        v = v.view(t, cfg.n_head_kv, hd)
        if cfg.qk_norm == "head":
            q, k = rms_norm(q, blk.q_norm, cfg.rms_eps), rms_norm(k, blk.k_norm, cfg.rms_eps)
        q = rope_neox(q, rope, cfg.rope_dim)
        k = rope_neox(k, rope, cfg.rope_dim)
        s, e = cache.n, cache.n + t
        cache.k[i][:, s:e] = k.transpose(0, 1)
        cache.v[i][:, s:e] = v.transpose(0, 1)
        keys, vals = cache.k[i][:, :e], cache.v[i][:, :e]
        rep = cfg.n_head // cfg.n_head_kv
        qh = q.transpose(0, 1)  # [H, T, hd]
        if rep > 1:
            qh = qh.reshape(cfg.n_head_kv, rep * t, hd)
            scores = (qh @ keys.transpose(1, 2)) * cfg.attn_scale  # [Hkv, rep*T, L]
            scores = scores.view(cfg.n_head_kv, rep, t, e) + mask
            probs = torch.softmax(scores, -1).view(cfg.n_head_kv, rep * t, e)
            out = (probs @ vals).view(cfg.n_head, t, hd)
        else:
            scores = (qh @ keys.transpose(1, 2)) * cfg.attn_scale + mask
            out = torch.softmax(scores, -1) @ vals
        out = out.transpose(0, 1).reshape(t, qd)
        return self.kernel.head_linear(self._attn[i][1], out) if self._attn is not None else out @ blk.wo.T


def load_transformer(path, kernel: str | ExpertKernel = "reference") -> tuple[Transformer, GGUFModelFile]:
    """Read a GGUF file into a `Transformer` whose FFNs run on `kernel`."""
    f = GGUFModelFile(path)
    cfg = config_from_gguf(f)
    kern = get_kernel(kernel) if isinstance(kernel, str) else kernel
    d, hd = cfg.d_model, cfg.head_dim
    qd, kd = cfg.n_head * hd, cfg.n_head_kv * hd
    blocks = []
    for i in range(cfg.n_layer):
        p = f"blk.{i}."
        T = lambda name, shape=None, optional=False: f.tensor(p + name, shape, optional=optional)  # noqa: E731
        qn = kn = None
        if cfg.qk_norm == "head":
            qn, kn = T("attn_q_norm.weight", (hd,)), T("attn_k_norm.weight", (hd,))
        elif cfg.qk_norm == "full":
            qn, kn = T("attn_q_norm.weight", (qd,)), T("attn_k_norm.weight", (kd,))
        blocks.append(Block(
            attn_norm=T("attn_norm.weight", (d,)),
            wq=T("attn_q.weight", (qd, d)), wk=T("attn_k.weight", (kd, d)), wv=T("attn_v.weight", (kd, d)),
            wo=T("attn_output.weight", (d, qd)),
            bq=T("attn_q.bias", (qd,), True), bk=T("attn_k.bias", (kd,), True), bv=T("attn_v.bias", (kd,), True),
            q_norm=qn, k_norm=kn,
            post_attn_norm=T("post_attention_norm.weight", (d,)) if cfg.spec.post_norms else None,
            ffn_norm=T("ffn_norm.weight", (d,)),
            post_ffw_norm=T("post_ffw_norm.weight", (d,)) if cfg.spec.post_norms else None,
            ffn=_load_ffn(f, cfg, p, kern), swa=cfg.swa_layers[i] if i < len(cfg.swa_layers) else False))
    tok = f.tensor("token_embd.weight", (cfg.n_vocab, d))
    out = f.tensor("output.weight", (cfg.n_vocab, d), optional=True)
    model = Transformer(cfg, tok, out, f.tensor("output_norm.weight", (d,)), blocks, kern)
    return model, f


def _load_ffn(f: GGUFModelFile, cfg: ModelConfig, p: str, kern: ExpertKernel) -> MoELayer:
    d, act = cfg.d_model, cfg.activation
    T = lambda name, shape: f.tensor(p + name, shape)  # noqa: E731
    if cfg.spec.ffn == "dense":
        fw = cfg.ffn_width
        shared = ExpertWeights(T("ffn_gate.weight", (fw, d))[None], T("ffn_up.weight", (fw, d))[None],
                               T("ffn_down.weight", (d, fw))[None], act)
        return MoELayer(kern, shared=shared)
    spec = RouterSpec(cfg.top_k, cfg.gating, cfg.norm_topk)
    n_total = sum(cfg.group_counts)
    router = T("ffn_gate_inp.weight", (n_total, d))
    shared = gate = None
    if cfg.spec.ffn == "moe":
        e, fw = cfg.group_counts[0], cfg.group_widths[0]
        routed = [ExpertWeights(T("ffn_gate_exps.weight", (e, fw, d)), T("ffn_up_exps.weight", (e, fw, d)),
                                T("ffn_down_exps.weight", (e, d, fw)), act)]
        if cfg.shared_count:
            fs = cfg.shared_width
            shared = ExpertWeights(T("ffn_gate_shexp.weight", (fs, d))[None], T("ffn_up_shexp.weight", (fs, d))[None],
                                   T("ffn_down_shexp.weight", (d, fs))[None], act)
            gate = T("ffn_gate_inp_shexp.weight", (d,)) if cfg.shared_gate else None
    else:
        routed = []
        for g, (e, fw) in enumerate(zip(cfg.group_counts, cfg.group_widths)):
            routed.append(ExpertWeights(T(f"ffn_gate_exps_g{g}.weight", (e, fw, d)),
                                        T(f"ffn_up_exps_g{g}.weight", (e, fw, d)),
                                        T(f"ffn_down_exps_g{g}.weight", (e, d, fw)), act))
        if cfg.shared_count:
            s, fs = cfg.shared_count, cfg.shared_width
            shared = ExpertWeights(T("ffn_gate_shexps.weight", (s, fs, d)), T("ffn_up_shexps.weight", (s, fs, d)),
                                   T("ffn_down_shexps.weight", (s, d, fs)), act)
            gate = T("ffn_gate_inp_shexp.weight", (d,)) if cfg.shared_gate else None
    return MoELayer(kern, shared=shared, shared_gate=gate, router=router, routed=routed, spec=spec)
