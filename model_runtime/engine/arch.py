"""Architectures: a small description each, read together with the file's metadata into one `ModelConfig`.

Everything the architectures share (pre-norm transformer blocks, GQA attention with RoPE, the MoE layer) is written
once in `model.py`; an architecture only states what is its own here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from model_runtime.engine.gguf_file import GGUFModelFile
from model_runtime.errors import CorruptModelError, UnsupportedModelError

HMOE_ARCH = "moesearch-hmoe"
GATING_FUNCS = {1: "softmax", 2: "sigmoid"}  # llama.cpp's expert_gating_func values


@dataclass(frozen=True)
class ArchSpec:
    name: str
    ffn: str  # "dense" | "moe" | "hmoe"
    qk_norm: str = "none"  # "none" | "head" (per head, before RoPE) | "full" (over all heads' q / k)
    post_norms: bool = False  # gemma: norms on the attention and FFN outputs before the residual add
    embed_scale_sqrt_d: bool = False  # gemma: embeddings times sqrt(d_model)
    activation: str = "silu"
    shared_expert: bool = False  # qwen2moe: one shared expert with a sigmoid gate
    gating: str = "softmax"
    norm_topk: bool = False
    swa_pattern: int = 0  # gemma3: 6 -> five sliding-window layers, then one global layer
    rope_base_swa: float | None = None
    attn_bias: bool = False  # qwen2moe: biases on q, k, v


ARCHS: dict[str, ArchSpec] = {s.name: s for s in [
    ArchSpec("gemma3", "dense", qk_norm="head", post_norms=True, embed_scale_sqrt_d=True, activation="gelu_tanh",
             swa_pattern=6, rope_base_swa=10000.0),
    ArchSpec("qwen2", "dense", attn_bias=True),  # tied embeddings when the file has no output.weight
    ArchSpec("qwen2moe", "moe", shared_expert=True, attn_bias=True),
    ArchSpec("qwen3moe", "moe", qk_norm="head", norm_topk=True),
    ArchSpec("olmoe", "moe", qk_norm="full"),
    ArchSpec(HMOE_ARCH, "hmoe"),
]}


def supported_architectures() -> list[str]:
    return list(ARCHS)


@dataclass
class ModelConfig:
    arch: str
    spec: ArchSpec
    n_layer: int
    d_model: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    context_length: int
    rms_eps: float
    rope_base: float
    rope_base_swa: float
    rope_dim: int
    rope_scale: float  # linear position scale on global layers (1 / factor)
    attn_scale: float
    sliding_window: int  # 0 = none
    swa_layers: list[bool]
    qk_norm: str
    activation: str
    ffn_width: int = 0  # dense
    # MoE (routed groups: counts and widths; one group for standard MoE archs)
    group_counts: list[int] = field(default_factory=list)
    group_widths: list[int] = field(default_factory=list)
    top_k: int = 0
    gating: str = "softmax"
    norm_topk: bool = False
    shared_count: int = 0
    shared_width: int = 0
    shared_gate: bool = False
    embedding_scale: float = 0.0  # hmoe: the parent's embedding multiplier, as its file states (0 = from the spec)

    @property
    def embed_scale(self) -> float:
        if self.embedding_scale > 0:
            return self.embedding_scale
        return math.sqrt(self.d_model) if self.spec.embed_scale_sqrt_d else 1.0


def config_from_gguf(f: GGUFModelFile) -> ModelConfig:
    """The file's architecture and hyperparameters (llama.cpp's GGUF keys, `{arch}.*`) as one `ModelConfig`.

    Raises UnsupportedModelError (naming the supported architectures) or CorruptModelError (a missing key)."""
    spec = ARCHS.get(f.arch)
    if spec is None:
        raise UnsupportedModelError(
            f"architecture {f.arch or '(none)'!r} of {f.path.name} is not supported by the torch engine; supported: "
            f"{', '.join(supported_architectures())}; use the llamacpp backend for other models")
    if spec.ffn == "hmoe":
        spec = _hmoe_spec(f, spec)
    cfg = _attention_config(f, spec)
    if spec.ffn == "dense":
        cfg.ffn_width = _scalar(f.hp("feed_forward_length"))
        cfg.shared_count, cfg.shared_width = 1, cfg.ffn_width
    elif spec.ffn == "moe":
        _moe_config(f, spec, cfg)
    else:
        _hmoe_config(f, cfg)
    return cfg


def _swa_layers(f: GGUFModelFile, spec: ArchSpec, n_layer: int) -> tuple[int, list[bool]]:
    """(sliding window, which layers use it): gemma3's pattern of N-1 windowed layers then one global one."""
    swa = int(f.hp("attention.sliding_window", 0) or 0) if spec.swa_pattern else 0
    pattern = f.hp("attention.sliding_window_pattern", spec.swa_pattern)
    if isinstance(pattern, list):
        return swa, [bool(p) for p in pattern]
    pattern = int(pattern)
    return swa, [bool(swa) and pattern > 0 and (i % pattern < pattern - 1) for i in range(n_layer)]


def _attention_config(f: GGUFModelFile, spec: ArchSpec) -> ModelConfig:
    """Everything but the FFN: dimensions, heads, vocabulary, norms, RoPE, attention scale and window."""
    d = int(f.hp("embedding_length"))
    n_head = int(f.hp("attention.head_count"))
    n_head_kv = f.hp("attention.head_count_kv", n_head)
    n_head_kv = int(n_head_kv[0] if isinstance(n_head_kv, list) else n_head_kv)
    head_dim = int(f.hp("attention.key_length", d // n_head))
    n_layer = int(f.hp("block_count"))
    vocab = f.hp("vocab_size", None)
    if vocab is None:
        vocab = len(f.get("tokenizer.ggml.tokens", [])) or f.shape("token_embd.weight")[0]
    swa, swa_layers = _swa_layers(f, spec, n_layer)
    scale_type = f.hp("rope.scaling.type", "none")
    factor = float(f.hp("rope.scaling.factor", 1.0) or 1.0)
    hmoe = spec.ffn == "hmoe"
    return ModelConfig(
        arch=f.arch, spec=spec, n_layer=n_layer, d_model=d, n_head=n_head, n_head_kv=n_head_kv,
        head_dim=head_dim, n_vocab=int(vocab), context_length=int(f.hp("context_length", 4096)),
        rms_eps=float(f.hp("attention.layer_norm_rms_epsilon", 1e-6)),
        rope_base=float(f.hp("rope.freq_base", 10000.0)),
        rope_base_swa=float(f.hp("rope.freq_base_swa", spec.rope_base_swa or f.hp("rope.freq_base", 10000.0))),
        rope_dim=int(f.hp("rope.dimension_count", head_dim)),
        rope_scale=1.0 / factor if scale_type == "linear" and factor > 0 else 1.0,
        attn_scale=float(f.hp("attention.scale", 0.0) or 0.0) or 1.0 / math.sqrt(head_dim),
        sliding_window=swa, swa_layers=swa_layers,
        qk_norm=str(f.hp("attention.qk_norm", "none")) if hmoe else spec.qk_norm,
        activation=str(f.hp("activation", spec.activation)) if hmoe else spec.activation,
    )


def _moe_config(f: GGUFModelFile, spec: ArchSpec, cfg: ModelConfig) -> None:
    """One routed group (qwen2moe, qwen3moe, olmoe), qwen2moe's gated shared expert."""
    width = int(f.hp("expert_feed_forward_length", 0) or 0) or f.shape("blk.0.ffn_gate_exps.weight")[1]
    cfg.group_counts, cfg.group_widths = [int(f.hp("expert_count"))], [width]
    cfg.top_k = int(f.hp("expert_used_count"))
    cfg.gating, cfg.norm_topk = spec.gating, spec.norm_topk
    if spec.shared_expert:
        cfg.shared_count, cfg.shared_gate = 1, True
        cfg.shared_width = int(f.hp("expert_shared_feed_forward_length", 0) or 0) or _scalar(
            f.hp("feed_forward_length"))


def _hmoe_spec(f: GGUFModelFile, spec: ArchSpec) -> ArchSpec:
    """What a moesearch-hmoe file keeps of its dense parent beyond attention and FFN (a Gemma 3 parent: norms on
    the attention and FFN outputs, scaled embeddings, five sliding-window layers then one global one), read from
    the optional keys `post_norms`, `embedding_scale`, `attention.sliding_window_pattern`, `rope.freq_base_swa`."""
    swa_base = f.hp("rope.freq_base_swa", None)
    return replace(spec, post_norms=bool(f.hp("post_norms", False)),
                   embed_scale_sqrt_d=float(f.hp("embedding_scale", 0.0) or 0.0) > 0,
                   swa_pattern=int(f.hp("attention.sliding_window_pattern", 0) or 0),
                   rope_base_swa=None if swa_base is None else float(swa_base))


def _hmoe_config(f: GGUFModelFile, cfg: ModelConfig) -> None:
    """Our heterogeneous MoE: routed groups of their own widths, shared experts, gating from the metadata."""
    cfg.group_counts = [int(x) for x in f.hp("expert_group_counts")]
    cfg.group_widths = [int(x) for x in f.hp("expert_group_feed_forward_lengths")]
    if len(cfg.group_counts) != len(cfg.group_widths):
        raise CorruptModelError(f"{f.path.name}: {cfg.arch}.expert_group_counts and expert_group_feed_forward_lengths "
                                "have different lengths")
    cfg.top_k = int(f.hp("expert_used_count"))
    cfg.gating = GATING_FUNCS.get(int(f.hp("expert_gating_func", 1)), "softmax")
    cfg.norm_topk = bool(f.hp("expert_weights_norm", False))
    cfg.shared_count = int(f.hp("expert_shared_count", 0))
    cfg.shared_width = int(f.hp("expert_shared_feed_forward_length", 0))
    cfg.shared_gate = bool(f.hp("expert_shared_gate", False))
    cfg.embedding_scale = float(f.hp("embedding_scale", 0.0) or 0.0)


def _scalar(v) -> int:
    return int(v[0] if isinstance(v, list) else v)
