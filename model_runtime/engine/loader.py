"""The one loader: a GGUF file into a `Transformer`, each tensor read once, straight into its kernel.

Weights are read from the mapped file piece by piece and handed to the kernel that keeps them, so no whole tensor is
ever held in float32:
- routed and shared experts through `GGUFExperts`, a lazy group whose `expert(e)` dequantizes one expert; a kernel's
  `prepare` quantizes it and lets it go (transient memory: one expert in float32);
- attention: q, k, v dequantized, fused into one [q + 2 kv, D] weight and prepared by the kernel's linear kernel;
- the output head in row chunks (`LinearKernel.prepare_chunks`);
- the embedding table is not converted at all: `QuantizedRows` dequantizes the rows of the tokens looked up.

Expert placement between devices is decided before any weight is read: `load_model(..., ffn_builder=...)` lets the
caller build each layer's FFN from its lazy sources (see `placement.load_placed`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from model_runtime.engine.arch import ModelConfig, config_from_gguf
from model_runtime.engine.gguf_file import GGUFModelFile
from model_runtime.engine.kernels import ExpertKernel, ExpertWeights, LinearKernel, get_kernel
from model_runtime.engine.model import Block, Transformer
from model_runtime.engine.moe import MoELayer, RouterSpec
from model_runtime.engine.prepared_cache import PreparedCache, cached

HEAD_CHUNK_ROWS = 8192  # rows of the output head dequantized at a time (Gemma: 8192 x 640 x 4 B = 21 MB)


class GGUFExperts:
    """A group of same-width experts left in the GGUF file: names of the stacked gate/up/down tensors ([E, F, D],
    [E, F, D], [E, D, F]) or, with `stacked=False`, of one dense FFN's [F, D] / [D, F] tensors (one expert).

    Duck-types `ExpertWeights` for the kernels: `n_experts`, `width`, `dim`, `activation`, `widths`, `expert(e)`
    (float32, read from the file now), `materialize()` (the whole group in float32, for the reference kernel)."""

    widths = None
    cache = None  # a PreparedCache the kernel prepares through (set by `load_model`)

    def __init__(self, f: GGUFModelFile, names: tuple[str, str, str], n: int, width: int, dim: int,
                 activation: str, stacked: bool = True):
        self.f, self.names, self.stacked = f, names, stacked
        self.n_experts, self.width, self.dim, self.activation = n, width, dim, activation
        if not stacked and n != 1:
            raise ValueError("an unstacked FFN is one expert")
        for name, shape in zip(names, self._shapes()):  # fail at load, with the file's message, not mid-prepare
            f._info(name, (n, *shape) if stacked else shape)

    def _shapes(self) -> tuple[tuple[int, int], ...]:
        return (self.width, self.dim), (self.width, self.dim), (self.dim, self.width)

    def expert(self, e: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not self.stacked:
            return tuple(self.f.tensor(n, s) for n, s in zip(self.names, self._shapes()))
        return tuple(self.f.expert(n, e, s) for n, s in zip(self.names, self._shapes()))

    def materialize(self) -> ExpertWeights:
        n, fw, d = self.n_experts, self.width, self.dim
        gate, up, down = torch.empty(n, fw, d), torch.empty(n, fw, d), torch.empty(n, d, fw)
        for e in range(n):
            gate[e], up[e], down[e] = self.expert(e)
        return ExpertWeights(gate, up, down, self.activation)


@dataclass
class FFNSources:
    """What one layer's FFN is made of, nothing read yet except the router and the shared gate (small)."""

    shared: GGUFExperts | None
    shared_gate: torch.Tensor | None
    router: torch.Tensor | None
    routed: list[GGUFExperts]
    spec: RouterSpec | None


def ffn_sources(f: GGUFModelFile, cfg: ModelConfig, i: int) -> FFNSources:
    """Layer i's FFN: a dense MLP (a shared group of one ungated expert), or routed groups (+ shared experts)."""
    p, d, act = f"blk.{i}.", cfg.d_model, cfg.activation
    if cfg.spec.ffn == "dense":
        dense = GGUFExperts(f, (p + "ffn_gate.weight", p + "ffn_up.weight", p + "ffn_down.weight"), 1,
                            cfg.ffn_width, d, act, stacked=False)
        return FFNSources(dense, None, None, [], None)
    router = f.tensor(p + "ffn_gate_inp.weight", (sum(cfg.group_counts), d))
    gate = f.tensor(p + "ffn_gate_inp_shexp.weight", (d,)) if cfg.shared_count and cfg.shared_gate else None
    if cfg.spec.ffn == "moe":
        names = [tuple(p + f"ffn_{n}_exps.weight" for n in ("gate", "up", "down"))]
        shared = None
        if cfg.shared_count:
            shared = GGUFExperts(f, tuple(p + f"ffn_{n}_shexp.weight" for n in ("gate", "up", "down")), 1,
                                 cfg.shared_width, d, act, stacked=False)
    else:
        names = [tuple(p + f"ffn_{n}_exps_g{g}.weight" for n in ("gate", "up", "down"))
                 for g in range(len(cfg.group_counts))]
        shared = None
        if cfg.shared_count:
            shared = GGUFExperts(f, tuple(p + f"ffn_{n}_shexps.weight" for n in ("gate", "up", "down")),
                                 cfg.shared_count, cfg.shared_width, d, act)
    routed = [GGUFExperts(f, nm, e, fw, d, act) for nm, e, fw in zip(names, cfg.group_counts, cfg.group_widths)]
    return FFNSources(shared, gate, router, routed, RouterSpec(cfg.top_k, cfg.gating, cfg.norm_topk))


def moe_layer(kern: ExpertKernel, src: FFNSources) -> MoELayer:
    return MoELayer(kern, shared=src.shared, shared_gate=src.shared_gate, router=src.router, routed=src.routed,
                    spec=src.spec)


FFNBuilder = Callable[[int, FFNSources], object]


def _attention(f: GGUFModelFile, cfg: ModelConfig, p: str, lin: LinearKernel, cache: PreparedCache | None) -> tuple:
    d, hd = cfg.d_model, cfg.head_dim
    qd, kd = cfg.n_head * hd, cfg.n_head_kv * hd
    names = [(p + f"attn_{n}.weight", (m, d)) for n, m in (("q", qd), ("k", kd), ("v", kd))]
    for name, shape in names:  # shapes checked even when the prepared weights come from the cache
        f._info(name, shape)
    f._info(p + "attn_output.weight", (d, qd))
    qkv = cached(cache, p + "qkv", lambda: lin.prepare(torch.cat([f.tensor(n, s) for n, s in names], 0)), lin)
    wo = cached(cache, p + "wo", lambda: lin.prepare(f.tensor(p + "attn_output.weight", (d, qd))), lin)
    biases = [f.tensor(p + f"attn_{n}.bias", (m,), optional=True) for n, m in (("q", qd), ("k", kd), ("v", kd))]
    bias = torch.cat(biases) if all(b is not None for b in biases) else None
    return qkv, wo, bias


def _block(f: GGUFModelFile, cfg: ModelConfig, i: int, lin: LinearKernel, ffn,
           cache: PreparedCache | None = None) -> Block:
    p, d, hd = f"blk.{i}.", cfg.d_model, cfg.head_dim
    T = lambda name, shape: f.tensor(p + name, shape)  # noqa: E731
    qn = kn = None
    if cfg.qk_norm == "head":
        qn, kn = T("attn_q_norm.weight", (hd,)), T("attn_k_norm.weight", (hd,))
    elif cfg.qk_norm == "full":
        qn, kn = T("attn_q_norm.weight", (cfg.n_head * hd,)), T("attn_k_norm.weight", (cfg.n_head_kv * hd,))
    qkv, wo, bias = _attention(f, cfg, p, lin, cache)
    post = cfg.spec.post_norms
    return Block(attn_norm=T("attn_norm.weight", (d,)), qkv=qkv, wo=wo, bqkv=bias, q_norm=qn, k_norm=kn,
                 post_attn_norm=T("post_attention_norm.weight", (d,)) if post else None,
                 ffn_norm=T("ffn_norm.weight", (d,)),
                 post_ffw_norm=T("post_ffw_norm.weight", (d,)) if post else None,
                 ffn=ffn, swa=cfg.swa_layers[i] if i < len(cfg.swa_layers) else False)


def _prepared_cache(path: str | Path, kern: ExpertKernel, lin: LinearKernel,
                    cache_dir: Path | None) -> PreparedCache | None:
    if cache_dir is None or not getattr(kern, "cacheable", False) or not getattr(lin, "cacheable", False):
        return None
    return PreparedCache(cache_dir, Path(path), f"{kern.name}-v{kern.cache_version}-{lin.name}-v{lin.cache_version}")


def _with_cache(src: FFNSources, cache: PreparedCache | None) -> FFNSources:
    for g in [src.shared, *src.routed]:
        if g is not None:
            g.cache = cache  # read by the CPU kernels' `prepare`
    return src


def load_model(path: str | Path, kernel: str | ExpertKernel = "reference", *, device: str = "cpu",
               ffn_builder: FFNBuilder | None = None,
               cache_dir: Path | None = None) -> tuple[Transformer, GGUFModelFile]:
    """Read a GGUF file into a `Transformer` on `device` whose FFNs run on `kernel` (or what `ffn_builder(i,
    sources)` builds from layer i's lazy sources). Returns the model and the (still mapped) file.

    With `cache_dir` and a kernel that can save what it prepares (the CPU int8/int4 kernels), prepared weights come
    from (or are saved to) the prepared-weight cache there (`prepared_cache.py`); `model.prepared_cache_hit` says
    which. Raises ModelNotFoundError, CorruptModelError, UnsupportedModelError (unknown architecture or tensor type:
    the message names the supported ones)."""
    f = GGUFModelFile(path)
    cfg = config_from_gguf(f)
    kern = get_kernel(kernel) if isinstance(kernel, str) else kernel
    lin = kern.linear
    cache = _prepared_cache(path, kern, lin, cache_dir)
    ffn_cache = cache if ffn_builder is None else None  # placed layers prepare their experts their own way
    build = ffn_builder or (lambda i, src: moe_layer(kern, src))
    blocks = [_block(f, cfg, i, lin, build(i, _with_cache(ffn_sources(f, cfg, i), ffn_cache)), cache)
              for i in range(cfg.n_layer)]
    embed = f.rows("token_embd.weight")
    if embed.shape != (cfg.n_vocab, cfg.d_model):
        f._info("token_embd.weight", (cfg.n_vocab, cfg.d_model))  # raises the shape message
    tied = not f.has("output.weight")
    head_name = "token_embd.weight" if tied else "output.weight"
    f._info(head_name, (cfg.n_vocab, cfg.d_model))
    head = cached(cache, "head", lambda: lin.prepare_chunks(f.row_chunks(head_name, HEAD_CHUNK_ROWS),
                                                            (cfg.n_vocab, cfg.d_model)), lin)
    model = Transformer(cfg, embed, head, f.tensor("output_norm.weight", (cfg.d_model,)), blocks, kern,
                        tied=tied, device=device)
    model.prepared_cache_hit = cache is not None and cache.hit
    if cache is not None:
        cache.save()
    f.release_pages()
    _trim()
    return model, f


@functools.lru_cache(maxsize=1)
def _libc():
    """libc through ctypes, found once (`find_library` runs a subprocess: 7 ms a call)."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _trim() -> None:
    """Give the heap's freed blocks back to the OS: glibc keeps the transients of loading (expert-sized blocks below
    its adaptive mmap threshold) resident otherwise; measured on the embedded model, 2.1 GB resident after a load
    that uses 0.8 GB. (A fixed low M_MMAP_THRESHOLD instead cut the peak by 0.1 GB but made loading 20% slower.)"""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def load_transformer(path: str | Path, kernel: str | ExpertKernel = "reference") -> tuple[Transformer, GGUFModelFile]:
    """`load_model` on the CPU (the name the tests and benchmarks use)."""
    return load_model(path, kernel)
