"""The dense parent: its hyperparameters and float32 weights, read from its GGUF file with the engine's reader.

Supported parent architectures: `gemma3` (Gemma 3: QK-norm per head, post-attention / post-FFN norms, embeddings
times sqrt(d), GELU-tanh, every 6th layer global and the others sliding-window with their own RoPE base) and
`qwen2` (Qwen2 / Qwen2.5: q/k/v biases, SiLU, tied or separate output). Sources: llama.cpp's `gemma3` and `qwen2`
graphs (src/models/gemma3.cpp, qwen2.cpp), whose GGUF key and tensor names these are.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tune.errors import TuneError

PARENT_ARCHS = ("gemma3", "qwen2")


@dataclass
class ParentConfig:
    arch: str
    n_layer: int
    d_model: int
    n_head: int
    n_head_kv: int
    head_dim: int
    ffn_width: int
    n_vocab: int
    rms_eps: float
    rope_base: float
    rope_base_swa: float
    sliding_window: int
    swa_layers: list[bool]
    context_length: int
    activation: str  # silu | gelu_tanh
    qk_norm: bool
    post_norms: bool
    embed_scale: float
    attn_scale: float
    extra: dict = field(default_factory=dict)


def read_config(f, max_layers: int | None = None) -> ParentConfig:
    """`f`: a `GGUFModelFile`. `max_layers` keeps only the first blocks (tests use 2 for speed)."""
    arch = f.arch
    if arch not in PARENT_ARCHS:
        raise TuneError(f"{f.path.name} is a {arch or 'unknown'!r} model; `moesearch tune` turns dense "
                        f"{' or '.join(PARENT_ARCHS)} models into MoEs: pick such a parent with --parent")
    hp = f.hp
    d, n_head = int(hp("embedding_length")), int(hp("attention.head_count"))
    kv = hp("attention.head_count_kv", n_head)
    hd = int(hp("attention.key_length", d // n_head))
    n_layer = int(hp("block_count"))
    ffn = hp("feed_forward_length")
    gemma = arch == "gemma3"
    swa = int(hp("attention.sliding_window", 0) or 0) if gemma else 0
    pattern = 6
    swa_layers = [bool(swa) and (i % pattern < pattern - 1) for i in range(n_layer)]
    vocab = hp("vocab_size", None) or f.shape("token_embd.weight")[0]
    n_keep = min(n_layer, max_layers or n_layer)
    return ParentConfig(
        arch=arch, n_layer=n_keep, d_model=d, n_head=n_head, n_head_kv=int(kv[0] if isinstance(kv, list) else kv),
        head_dim=hd, ffn_width=int(ffn[0] if isinstance(ffn, list) else ffn), n_vocab=int(vocab),
        rms_eps=float(hp("attention.layer_norm_rms_epsilon", 1e-6)), rope_base=float(hp("rope.freq_base", 10000.0)),
        rope_base_swa=10000.0 if gemma else float(hp("rope.freq_base", 10000.0)), sliding_window=swa,
        swa_layers=swa_layers[:n_keep], context_length=int(hp("context_length", 4096)),
        activation="gelu_tanh" if gemma else "silu", qk_norm=gemma, post_norms=gemma,
        embed_scale=math.sqrt(d) if gemma else 1.0,
        attn_scale=float(hp("attention.scale", 0.0) or 0.0) or 1.0 / math.sqrt(hd))


def open_parent(path: str | Path):
    """The parent's `GGUFModelFile`; a missing or unreadable file -> `TuneError` that says what to do."""
    from model_runtime.engine.gguf_file import GGUFModelFile
    from model_runtime.errors import ModelRuntimeError

    path = Path(path)
    if not path.exists():
        raise TuneError(f"parent model {path} does not exist; run `moesearch model pull` for it or pass --parent "
                        "with the path of the dense GGUF the recipe was made from")
    try:
        return GGUFModelFile(path)
    except ModelRuntimeError as e:
        raise TuneError(f"parent model {path} cannot be read ({e})") from e


def resolve_parent(name: str) -> Path:
    """'embedded', a registered model name or a .gguf path -> the file."""
    from model_runtime.errors import ModelRuntimeError
    from model_runtime.registry import resolve_model

    try:
        return Path(resolve_model(name))
    except ModelRuntimeError as e:
        raise TuneError(f"parent {name!r}: {e}") from e


def layer_weights(f, i: int, cfg: ParentConfig) -> dict[str, torch.Tensor]:
    """Block `i`'s float32 tensors, keyed by their GGUF names without the `blk.i.` prefix and `.weight`/`.bias`
    suffix (`attn_q`, `attn_q.bias`, `ffn_gate` [F, D], `ffn_down` [D, F], ...)."""
    names = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]
    if cfg.qk_norm:
        names += ["attn_q_norm", "attn_k_norm"]
    if cfg.post_norms:
        names += ["post_attention_norm", "post_ffw_norm"]
    out = {n: f.tensor(f"blk.{i}.{n}.weight") for n in names}
    for n in ("attn_q", "attn_k", "attn_v"):
        b = f.tensor(f"blk.{i}.{n}.bias", optional=True)
        if b is not None:
            out[n + ".bias"] = b
    return out


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
