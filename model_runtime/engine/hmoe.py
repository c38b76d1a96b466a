"""Our GGUF architecture for hierarchical heterogeneous MoE models: `moesearch-hmoe`.

Metadata (prefix `moesearch-hmoe.`), beside the usual transformer keys (block_count, embedding_length,
attention.head_count, attention.head_count_kv, attention.key_length, attention.layer_norm_rms_epsilon,
rope.freq_base, context_length, vocab_size):

| key | type | meaning |
| --- | --- | --- |
| expert_shared_count | u32 | experts in the shared group (0 = none); every token uses all of them, weight 1 |
| expert_shared_feed_forward_length | u32 | FFN width of the shared experts |
| expert_shared_gate | bool | scale the shared group's output by sigmoid(x . ffn_gate_inp_shexp) |
| expert_group_counts | [u32] | experts per routed group |
| expert_group_feed_forward_lengths | [u32] | FFN width of each routed group |
| expert_used_count | u32 | top-k over all routed experts (groups concatenated in order) |
| expert_gating_func | u32 | 1 softmax, 2 sigmoid (llama.cpp's values) |
| expert_weights_norm | bool | renormalise the k chosen weights |
| attention.qk_norm | str | none, head or full |
| activation | str | silu or gelu_tanh |
| post_norms | bool | optional: norms on the attention and FFN outputs (`post_attention_norm`, `post_ffw_norm`), as Gemma |
| embedding_scale | f32 | optional: multiply the token embeddings by this (Gemma: sqrt(embedding_length)) |
| attention.sliding_window, attention.sliding_window_pattern | u32 | optional: window size; N means N-1 windowed layers then one global one |
| rope.freq_base_swa | f32 | optional: the RoPE base of the windowed layers |

Tensors per block: attention as in qwen (`attn_q/k/v/output`, optional biases and `attn_q_norm`/`attn_k_norm`),
`ffn_norm`, the router `ffn_gate_inp` [E_total, D], routed group g as `ffn_{gate,up}_exps_g{g}` [E_g, F_g, D] and
`ffn_down_exps_g{g}` [E_g, D, F_g], the shared group as `ffn_{gate,up}_shexps` [S, Fs, D], `ffn_down_shexps`
[S, D, Fs] and the gate `ffn_gate_inp_shexp` [D]. Shapes are in torch order (GGUF ne reversed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model_runtime.engine.arch import HMOE_ARCH

TOKENIZER_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                  "tokenizer.ggml.merges", "tokenizer.ggml.scores", "tokenizer.ggml.bos_token_id",
                  "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.unknown_token_id",
                  "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token")


@dataclass
class HMoEParams:
    n_layer: int
    d_model: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    group_counts: list[int]
    group_widths: list[int]
    top_k: int
    shared_count: int = 0
    shared_width: int = 0
    shared_gate: bool = False
    gating: str = "softmax"
    norm_topk: bool = False
    qk_norm: str = "none"
    activation: str = "silu"
    context_length: int = 4096
    rms_eps: float = 1e-6
    rope_base: float = 10000.0
    extra: dict[str, Any] = field(default_factory=dict)


def write_metadata(w, p: HMoEParams) -> None:
    a = HMOE_ARCH
    w.add_uint32(f"{a}.block_count", p.n_layer)
    w.add_uint32(f"{a}.context_length", p.context_length)
    w.add_uint32(f"{a}.embedding_length", p.d_model)
    w.add_uint32(f"{a}.vocab_size", p.n_vocab)
    w.add_uint32(f"{a}.attention.head_count", p.n_head)
    w.add_uint32(f"{a}.attention.head_count_kv", p.n_head_kv)
    w.add_uint32(f"{a}.attention.key_length", p.head_dim)
    w.add_uint32(f"{a}.attention.value_length", p.head_dim)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", p.rms_eps)
    w.add_float32(f"{a}.rope.freq_base", p.rope_base)
    w.add_string(f"{a}.attention.qk_norm", p.qk_norm)
    w.add_string(f"{a}.activation", p.activation)
    w.add_uint32(f"{a}.expert_shared_count", p.shared_count)
    w.add_uint32(f"{a}.expert_shared_feed_forward_length", p.shared_width)
    w.add_bool(f"{a}.expert_shared_gate", p.shared_gate)
    w.add_array(f"{a}.expert_group_counts", [int(x) for x in p.group_counts])
    w.add_array(f"{a}.expert_group_feed_forward_lengths", [int(x) for x in p.group_widths])
    w.add_uint32(f"{a}.expert_used_count", p.top_k)
    w.add_uint32(f"{a}.expert_gating_func", 1 if p.gating == "softmax" else 2)
    w.add_bool(f"{a}.expert_weights_norm", p.norm_topk)


def write_hmoe_gguf(path: str | Path, p: HMoEParams, tensors: dict[str, np.ndarray],
                    tokenizer: dict[str, Any] | None = None, name: str = "moesearch-hmoe") -> Path:
    """Write a `moesearch-hmoe` GGUF file: `tensors` name -> float32 array (torch order), stored as F32."""
    import gguf

    path = Path(path)
    w = gguf.GGUFWriter(str(path), HMOE_ARCH)
    w.add_name(name)
    write_metadata(w, p)
    copy_tokenizer(w, tokenizer or {})
    for n, t in tensors.items():
        w.add_tensor(n, np.ascontiguousarray(t, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def copy_tokenizer(w, meta: dict[str, Any]) -> None:
    """Write the tokenizer.* keys of another file's metadata (as GGUFModelFile.metadata holds them)."""
    import gguf

    for k in TOKENIZER_KEYS:
        v = meta.get(k)
        if v is None:
            continue
        if isinstance(v, bool):
            w.add_bool(k, v)
        elif isinstance(v, int):
            w.add_uint32(k, v)
        elif isinstance(v, str):
            w.add_string(k, v)
        elif isinstance(v, list):
            if k == "tokenizer.ggml.scores":
                w.add_array(k, [float(x) for x in v])
            elif k == "tokenizer.ggml.token_type":
                w.add_key_value(k, [int(x) for x in v], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32)
            else:
                w.add_array(k, v)


def save_hmoe(model, path: str | Path, tokenizer: dict[str, Any] | None = None) -> Path:
    """Save a loaded `moesearch-hmoe` Transformer (reference kernel, float32 weights kept) back to GGUF."""
    cfg = model.cfg
    p = HMoEParams(cfg.n_layer, cfg.d_model, cfg.n_head, cfg.n_head_kv, cfg.head_dim, cfg.n_vocab,
                   list(cfg.group_counts), list(cfg.group_widths), cfg.top_k, cfg.shared_count, cfg.shared_width,
                   cfg.shared_gate, cfg.gating, cfg.norm_topk, cfg.qk_norm, cfg.activation, cfg.context_length,
                   cfg.rms_eps, cfg.rope_base)
    if model.kernel.name != "reference":
        raise ValueError("save_hmoe needs a model loaded with the reference kernel (float32 weights)")
    t: dict[str, np.ndarray] = {"token_embd.weight": model.embed.full().numpy(),
                                "output_norm.weight": model.output_norm.numpy()}
    if not model.tied:
        t["output.weight"] = model.head.numpy()
    qd, kd = cfg.n_head * cfg.head_dim, cfg.n_head_kv * cfg.head_dim
    for i, b in enumerate(model.blocks):
        pre = f"blk.{i}."
        wq, wk, wv = b.qkv.split([qd, kd, kd])
        for n, v in [("attn_norm", b.attn_norm), ("attn_q", wq), ("attn_k", wk), ("attn_v", wv),
                     ("attn_output", b.wo), ("attn_q_norm", b.q_norm), ("attn_k_norm", b.k_norm),
                     ("ffn_norm", b.ffn_norm)]:
            if v is not None:
                t[pre + n + ".weight"] = v.contiguous().numpy()
        if b.bqkv is not None:
            for n, v in zip(("attn_q", "attn_k", "attn_v"), b.bqkv.split([qd, kd, kd])):
                t[pre + n + ".bias"] = v.contiguous().numpy()
        ffn = b.ffn
        t[pre + "ffn_gate_inp.weight"] = ffn.router.numpy()
        for g, ew in enumerate(ffn.routed):
            t[pre + f"ffn_gate_exps_g{g}.weight"] = ew.gate.numpy()
            t[pre + f"ffn_up_exps_g{g}.weight"] = ew.up.numpy()
            t[pre + f"ffn_down_exps_g{g}.weight"] = ew.down.numpy()
        if ffn.shared is not None:
            t[pre + "ffn_gate_shexps.weight"] = ffn.shared.gate.numpy()
            t[pre + "ffn_up_shexps.weight"] = ffn.shared.up.numpy()
            t[pre + "ffn_down_shexps.weight"] = ffn.shared.down.numpy()
        if ffn.shared_gate is not None:
            t[pre + "ffn_gate_inp_shexp.weight"] = ffn.shared_gate.numpy()
    return write_hmoe_gguf(path, p, t, tokenizer)
