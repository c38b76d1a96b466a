"""Small GGUF files with random weights, written with the `gguf` package, for engine tests.

`random_model(arch, ...)` returns (metadata, tensors) for a standard architecture (gemma3, qwen2, qwen2moe, qwen3moe, olmoe)
in torch order; `write_gguf(path, arch, metadata, tensors, qtypes)` writes it with a byte-level GPT-2 style
tokenizer that llama.cpp loads (256 byte tokens, two merges, BOS/EOS control tokens). `qtypes` maps a tensor-name
substring to a GGML type; K-quant tensors are written as random blocks with small, valid scales (the gguf package
cannot quantize to K types), every other type through `gguf.quants.quantize`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

N_BYTE_TOKENS = 256
BOS, EOS = 256, 257


def byte_unicode() -> list[str]:
    """GPT-2's reversible byte -> printable character mapping."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return [chars[b] for b in range(256)]


def tokenizer_metadata(n_vocab: int) -> dict[str, Any]:
    toks = byte_unicode() + ["<|bos|>", "<|eos|>", "Ġt", "he"]
    types = [1] * 256 + [3, 3, 1, 1]
    for i in range(len(toks), n_vocab):
        toks.append(f"<|unused{i}|>")
        types.append(5)
    return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "default", "tokenizer.ggml.tokens": toks,
            "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": ["Ġ t", "h e"],
            "tokenizer.ggml.bos_token_id": BOS, "tokenizer.ggml.eos_token_id": EOS,
            "tokenizer.ggml.add_bos_token": True}


def random_model(arch: str, *, n_layer: int = 2, d_model: int = 64, n_head: int = 4, n_head_kv: int = 2,
                 head_dim: int = 16, n_vocab: int = 320, n_expert: int = 8, top_k: int = 2, ffn: int = 32,
                 shared_ffn: int = 48, dense_ffn: int = 96, sliding_window: int = 8, seed: int = 0,
                 logit_std: float = 4.0) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    a = arch
    if arch == "olmoe":
        n_head_kv = n_head  # llama.cpp's olmoe has no GQA (k_norm spans n_embd)
    d, hd = d_model, head_dim
    qd, kd = n_head * hd, n_head_kv * hd

    def w(*shape, std=None):
        std = std if std is not None else 1.0 / np.sqrt(shape[-1])
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    meta: dict[str, Any] = {
        f"{a}.context_length": 2048, f"{a}.embedding_length": d, f"{a}.block_count": n_layer,
        f"{a}.attention.head_count": n_head, f"{a}.attention.head_count_kv": n_head_kv,
        f"{a}.attention.key_length": hd, f"{a}.attention.value_length": hd,
        f"{a}.attention.layer_norm_rms_epsilon": 1e-6, f"{a}.rope.freq_base": 10000.0, f"{a}.vocab_size": n_vocab,
    }
    t: dict[str, np.ndarray] = {"output_norm.weight": norm(d)}
    if arch == "gemma3":
        t["token_embd.weight"] = w(n_vocab, d, std=logit_std / np.sqrt(d))
        meta.update({f"{a}.feed_forward_length": dense_ffn, f"{a}.attention.sliding_window": sliding_window,
                     f"{a}.rope.freq_base": 1000000.0})
    elif arch == "qwen2":  # dense, tied embeddings (no output.weight), q/k/v biases
        t["token_embd.weight"] = w(n_vocab, d, std=logit_std / np.sqrt(d))
        meta[f"{a}.feed_forward_length"] = dense_ffn
    else:
        t["token_embd.weight"] = w(n_vocab, d, std=1.0)
        t["output.weight"] = w(n_vocab, d, std=logit_std / np.sqrt(d))
        meta.update({f"{a}.expert_count": n_expert, f"{a}.expert_used_count": top_k})
        if arch == "olmoe":  # real OLMoE files give the expert width as feed_forward_length
            meta[f"{a}.feed_forward_length"] = ffn
        else:
            meta.update({f"{a}.expert_feed_forward_length": ffn, f"{a}.feed_forward_length": ffn * top_k})
        if arch == "qwen2moe":
            meta[f"{a}.expert_shared_feed_forward_length"] = shared_ffn
    for i in range(n_layer):
        p = f"blk.{i}."
        t[p + "attn_norm.weight"] = norm(d)
        t[p + "attn_q.weight"] = w(qd, d)
        t[p + "attn_k.weight"] = w(kd, d)
        t[p + "attn_v.weight"] = w(kd, d)
        t[p + "attn_output.weight"] = w(d, qd)
        t[p + "ffn_norm.weight"] = norm(d)
        if arch in ("qwen2moe", "qwen2"):
            for n, m in (("q", qd), ("k", kd), ("v", kd)):
                t[p + f"attn_{n}.bias"] = w(m, std=0.1)
        if arch in ("gemma3", "qwen3moe"):
            t[p + "attn_q_norm.weight"] = norm(hd)
            t[p + "attn_k_norm.weight"] = norm(hd)
        if arch == "olmoe":
            t[p + "attn_q_norm.weight"] = norm(qd)
            t[p + "attn_k_norm.weight"] = norm(kd)
        if arch in ("gemma3", "qwen2"):
            if arch == "gemma3":
                t[p + "post_attention_norm.weight"] = norm(d)
                t[p + "post_ffw_norm.weight"] = norm(d)
            t[p + "ffn_gate.weight"] = w(dense_ffn, d)
            t[p + "ffn_up.weight"] = w(dense_ffn, d)
            t[p + "ffn_down.weight"] = w(d, dense_ffn)
            continue
        t[p + "ffn_gate_inp.weight"] = w(n_expert, d, std=1.0)
        t[p + "ffn_gate_exps.weight"] = w(n_expert, ffn, d)
        t[p + "ffn_up_exps.weight"] = w(n_expert, ffn, d)
        t[p + "ffn_down_exps.weight"] = w(n_expert, d, ffn)
        if arch == "qwen2moe":
            t[p + "ffn_gate_inp_shexp.weight"] = w(d)
            t[p + "ffn_gate_shexp.weight"] = w(shared_ffn, d)
            t[p + "ffn_up_shexp.weight"] = w(shared_ffn, d)
            t[p + "ffn_down_shexp.weight"] = w(d, shared_ffn)
    return meta, t


# bytes per block and the byte offsets of the f16 scale fields inside a block, for random K-quant blocks
_K_LAYOUT = {"Q4_K": (144, [0, 2]), "Q5_K": (176, [0, 2]), "Q6_K": (210, [208])}


def quantized_bytes(arr: np.ndarray, qtype_name: str, rng: np.random.Generator) -> np.ndarray:
    """Raw bytes of `arr` in `qtype_name` (rows of the last dimension); K types get random blocks instead."""
    import gguf

    q = gguf.GGMLQuantizationType[qtype_name]
    if qtype_name in _K_LAYOUT:
        nbytes, f16_offsets = _K_LAYOUT[qtype_name]
        rows, cols = int(np.prod(arr.shape[:-1])), arr.shape[-1]
        assert cols % 256 == 0, f"{qtype_name} needs rows of a multiple of 256, got {cols}"
        blocks = rng.integers(0, 256, size=(rows * cols // 256, nbytes), dtype=np.uint8)
        if qtype_name == "Q6_K":
            blocks[:, 192:208] = rng.integers(-16, 16, size=(blocks.shape[0], 16)).astype(np.int8).view(np.uint8)
        target = 1.0 / np.sqrt(cols) / (256.0 if qtype_name != "Q6_K" else 128.0)
        for off in f16_offsets:
            blocks[:, off:off + 2] = np.full(blocks.shape[0], target, dtype=np.float16).view(np.uint8).reshape(-1, 2)
        return blocks.reshape(*arr.shape[:-1], cols // 256 * nbytes)
    if qtype_name == "F16":
        return arr.astype(np.float16)
    return gguf.quants.quantize(arr, q)


def write_gguf(path: str | Path, arch: str, meta: dict[str, Any], tensors: dict[str, np.ndarray],
               qtypes: dict[str, str] | None = None, seed: int = 0, tokenizer: bool = True) -> Path:
    import gguf

    path = Path(path)
    rng = np.random.default_rng(seed + 1)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"random-{arch}")
    n_vocab = next(v for k, v in meta.items() if k.endswith(".vocab_size"))
    for k, v in {**meta, **(tokenizer_metadata(n_vocab) if tokenizer else {})}.items():
        if isinstance(v, bool):
            w.add_bool(k, v)
        elif isinstance(v, int):
            w.add_uint32(k, v)
        elif isinstance(v, float):
            w.add_float32(k, v)
        elif isinstance(v, str):
            w.add_string(k, v)
        elif k == "tokenizer.ggml.token_type":
            w.add_key_value(k, v, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32)
        else:
            w.add_array(k, v)
    for name, arr in tensors.items():
        qt = next((q for pat, q in (qtypes or {}).items() if pat in name), None) if arr.ndim >= 2 else None
        if qt is None or qt == "F32":
            w.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))
        else:
            data = quantized_bytes(arr, qt, rng)
            w.add_tensor(name, data, raw_shape=data.shape if qt == "F16" else None,
                         raw_dtype=gguf.GGMLQuantizationType[qt])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def random_gguf(tmp_dir: str | Path, arch: str, qtypes: dict[str, str] | None = None, **kw) -> Path:
    meta, t = random_model(arch, **kw)
    tag = "-".join(f"{k}{v}" for k, v in sorted((qtypes or {}).items())).replace(".", "") or "f32"
    return write_gguf(Path(tmp_dir) / f"{arch}-{tag}-{kw.get('seed', 0)}.gguf", arch, meta, t, qtypes,
                      seed=kw.get("seed", 0))


def qwen2moe_as_hmoe(meta: dict[str, Any], tensors: dict[str, np.ndarray], tmp_path: str | Path) -> Path:
    """The same weights as a qwen2moe random model, written as a `moesearch-hmoe` file (one routed group, a shared
    group of one expert with a sigmoid gate, softmax gating, no renormalisation)."""
    from model_runtime.engine.hmoe import HMoEParams, write_hmoe_gguf

    a = "qwen2moe"
    p = HMoEParams(n_layer=meta[f"{a}.block_count"], d_model=meta[f"{a}.embedding_length"],
                   n_head=meta[f"{a}.attention.head_count"], n_head_kv=meta[f"{a}.attention.head_count_kv"],
                   head_dim=meta[f"{a}.attention.key_length"], n_vocab=meta[f"{a}.vocab_size"],
                   group_counts=[meta[f"{a}.expert_count"]], group_widths=[meta[f"{a}.expert_feed_forward_length"]],
                   top_k=meta[f"{a}.expert_used_count"], shared_count=1,
                   shared_width=meta[f"{a}.expert_shared_feed_forward_length"], shared_gate=True,
                   context_length=meta[f"{a}.context_length"])
    out = {}
    for k, v in tensors.items():
        for old, new in (("_exps.", "_exps_g0."), ("_shexp.weight", "_shexps.weight")):
            if old in k and "gate_inp_shexp" not in k:
                k = k.replace(old, new)
                v = v[None] if new == "_shexps.weight" else v
        out[k] = v
    return write_hmoe_gguf(Path(tmp_path) / "as-hmoe.gguf", p, out, tokenizer_metadata(p.n_vocab))


# ---- comparison helpers shared by the engine tests ----

def kl_per_position(ref_logits, our_logits):
    """KL(p_ref || p_ours) of the next-token distributions, one value per position (float64)."""
    import torch

    lp = torch.log_softmax(torch.as_tensor(np.asarray(ref_logits)).double(), -1)
    lq = torch.log_softmax(torch.as_tensor(our_logits).double(), -1)
    return (lp.exp() * (lp - lq)).sum(-1)


def llama_greedy(path: str | Path, prompt: list[int], n: int, n_ctx: int = 512):
    """llama.cpp's greedy continuation of `prompt` (n tokens) and its logits at every position of prompt + tokens."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=2, seed=0)
    try:
        llm.eval(prompt)
        out = []
        for _ in range(n):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            out.append(tok)
            llm.eval([tok])
        logits = np.array(llm.scores[:llm.n_tokens], dtype=np.float32)
    finally:
        llm.close()
    return out, logits


_EMBEDDED: dict[str, Any] = {}


def embedded_transformer(kernel: str = "reference"):
    """The embedded Gemma 3 270M as our Transformer, loaded once per test session; other kernels are derived from
    the reference model (no second dequantization)."""
    if "reference" not in _EMBEDDED:
        from model_runtime.engine.loader import load_transformer
        from model_runtime.registry import embedded_model_path

        _EMBEDDED["reference"] = load_transformer(embedded_model_path(), "reference")[0]
    if kernel not in _EMBEDDED:
        _EMBEDDED[kernel] = _EMBEDDED["reference"].with_kernel(kernel)
    return _EMBEDDED[kernel]


def our_greedy(model, prompt: list[int], n: int) -> list[int]:
    """Our engine's greedy continuation: one prefill, then single-token decode steps on the KV cache."""
    import torch

    cache = model.new_cache(len(prompt) + n + 1)
    logits = model.forward(prompt, cache)[-1]
    out = []
    for _ in range(n):
        tok = int(torch.argmax(logits))
        out.append(tok)
        logits = model.forward([tok], cache)[-1]
    return out
