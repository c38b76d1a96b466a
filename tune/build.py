"""Build the `moesearch-hmoe` GGUF from the dense parent and a recipe (model_runtime/engine/hmoe.py's format).

- The parent must be the file the recipe was made from (sha256).
- Embeddings, norms and untouched attention tensors are copied byte for byte (their quantization kept);
  attention tensors with a LoRA adapter are merged and stored Q8_0.
- Experts: the parent's gate/up rows and down columns in the recipe's neuron order (+ LoRA), stored Q8_0
  (blocks of 32 along the input dimension: expert widths are multiples of 32); routers F32.
- Gemma 3 parents also get their post-attention / post-FFN norms, embedding scale and sliding-window layout,
  written under the `moesearch-hmoe.` keys listed in `GEMMA_KEYS` (the engine must read them; see tune/README).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from tune.errors import TuneError
from tune.parent import open_parent, read_config, sha256_file
from tune.recipe import Recipe


def check_parent(recipe: Recipe, parent: Path) -> None:
    if not parent.exists():
        raise TuneError(f"parent model {parent} does not exist; the recipe needs {recipe.parent_name} "
                        f"(sha256 {recipe.parent_sha256[:12]}...): pass --parent with its path")
    got = sha256_file(parent)
    if got != recipe.parent_sha256:
        raise TuneError(f"the recipe was made from {recipe.parent_name} (sha256 {recipe.parent_sha256[:12]}...), "
                        f"not {parent.name} (sha256 {got[:12]}...); pass --parent with the file it fits")


def _q8(a: np.ndarray):
    import gguf
    from gguf import quants

    return quants.quantize(np.ascontiguousarray(a, dtype=np.float32), gguf.GGMLQuantizationType.Q8_0)


def _lora_delta(recipe: Recipe, i: int, target: str) -> np.ndarray | None:
    a, b = recipe.lora.get(f"{i}.{target}.A"), recipe.lora.get(f"{i}.{target}.B")
    if a is None or b is None:
        return None
    return b.astype(np.float32) @ a.astype(np.float32) * (recipe.lora_alpha / recipe.lora_rank)


class _Writer:
    """gguf.GGUFWriter plus copies of a parent's tensors (raw bytes, same type)."""

    def __init__(self, path: Path, parent_file):
        import gguf

        from model_runtime.engine.arch import HMOE_ARCH
        from model_runtime.engine.gguf_file import read_gguf

        self.w = gguf.GGUFWriter(str(path), HMOE_ARCH)
        self.f = parent_file
        self.raw = read_gguf(parent_file.path)[1]  # name -> TensorInfo with the mapped bytes

    def copy(self, name: str, as_name: str | None = None) -> None:
        info = self.raw[name]
        data = np.asarray(info.data)
        if info.tensor_type.name in ("F32", "F16"):
            self.w.add_tensor(as_name or name, np.ascontiguousarray(data))
        else:
            self.w.add_tensor(as_name or name, np.ascontiguousarray(data), raw_dtype=info.tensor_type)

    def q8(self, name: str, a: np.ndarray) -> None:
        import gguf

        self.w.add_tensor(name, _q8(a), raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    def f32(self, name: str, a: np.ndarray) -> None:
        self.w.add_tensor(name, np.ascontiguousarray(a, dtype=np.float32))


def hmoe_params(cfg, recipe: Recipe):
    from model_runtime.engine.hmoe import HMoEParams

    s = recipe.shape
    return HMoEParams(cfg.n_layer, cfg.d_model, cfg.n_head, cfg.n_head_kv, cfg.head_dim, cfg.n_vocab,
                      [c for c, _ in s.groups], [w for _, w in s.groups], s.top_k,
                      shared_count=1 if s.shared else 0, shared_width=s.shared, shared_gate=False, gating="sigmoid",
                      norm_topk=False, qk_norm="head" if cfg.qk_norm else "none", activation=cfg.activation,
                      context_length=cfg.context_length, rms_eps=cfg.rms_eps, rope_base=cfg.rope_base)


GEMMA_KEYS = ("post_norms", "embedding_scale", "attention.sliding_window", "attention.sliding_window_pattern",
              "rope.freq_base_swa")


def _write_meta(wr: _Writer, cfg, recipe: Recipe) -> None:
    from model_runtime.engine.hmoe import copy_tokenizer, write_metadata

    w, a = wr.w, "moesearch-hmoe"
    w.add_name(f"searchmoe-{recipe.parent_name}")
    write_metadata(w, hmoe_params(cfg, recipe))
    if cfg.post_norms:
        w.add_bool(f"{a}.post_norms", True)
        w.add_float32(f"{a}.embedding_scale", cfg.embed_scale)
        w.add_uint32(f"{a}.attention.sliding_window", cfg.sliding_window)
        w.add_uint32(f"{a}.attention.sliding_window_pattern", 6)
        w.add_float32(f"{a}.rope.freq_base_swa", cfg.rope_base_swa)
    copy_tokenizer(w, wr.f.metadata)
    tmpl = wr.f.metadata.get("tokenizer.chat_template")
    if tmpl:
        w.add_string("tokenizer.chat_template", tmpl)


def _write_attention(wr: _Writer, i: int, cfg, recipe: Recipe) -> None:
    p = f"blk.{i}."
    for n in ["attn_norm", "ffn_norm"] + (["attn_q_norm", "attn_k_norm"] if cfg.qk_norm else []) + (
            ["post_attention_norm", "post_ffw_norm"] if cfg.post_norms else []):
        wr.copy(p + n + ".weight")
    for n, t in [("attn_q", "q"), ("attn_k", "k"), ("attn_v", "v"), ("attn_output", "o")]:
        delta = _lora_delta(recipe, i, t)
        if delta is None:
            wr.copy(p + n + ".weight")
        else:
            wr.q8(p + n + ".weight", wr.f.tensor(p + n + ".weight").numpy() + delta)
        if n != "attn_output" and wr.f.has(p + n + ".bias"):
            wr.copy(p + n + ".bias")


def _write_ffn(wr: _Writer, i: int, recipe: Recipe) -> None:
    p, s = f"blk.{i}.", recipe.shape
    perm = torch.as_tensor(recipe.perms[i])
    gate = wr.f.tensor(p + "ffn_gate.weight")[perm].numpy()
    up = wr.f.tensor(p + "ffn_up.weight")[perm].numpy()
    down = wr.f.tensor(p + "ffn_down.weight")[:, perm].numpy()
    for name, arr in (("gate", gate), ("up", up), ("down", down)):
        d = _lora_delta(recipe, i, name)
        if d is not None:
            arr += d
    wr.f32(p + "ffn_gate_inp.weight", recipe.routers[i])
    at = 0
    if s.shared:
        wr.q8(p + "ffn_gate_shexps.weight", gate[None, :s.shared])
        wr.q8(p + "ffn_up_shexps.weight", up[None, :s.shared])
        wr.q8(p + "ffn_down_shexps.weight", down[None, :, :s.shared])
        at = s.shared
    for g, (count, width) in enumerate(s.groups):
        rows = [slice(at + e * width, at + (e + 1) * width) for e in range(count)]
        wr.q8(p + f"ffn_gate_exps_g{g}.weight", np.stack([gate[r] for r in rows]))
        wr.q8(p + f"ffn_up_exps_g{g}.weight", np.stack([up[r] for r in rows]))
        wr.q8(p + f"ffn_down_exps_g{g}.weight", np.stack([down[:, r] for r in rows]))
        at += count * width


def build_gguf(recipe: Recipe, parent: str | Path, out: str | Path, check: bool = True, progress=None) -> dict:
    """Write the SearchMoE GGUF to `out`; returns {path, sha256, seconds, bytes}. A recipe with a
    `gguf_sha256` in its info is checked against the result (TuneError when it differs)."""
    started = time.perf_counter()
    parent, out = Path(parent), Path(out)
    if check:
        check_parent(recipe, parent)
    f = open_parent(parent)
    cfg = read_config(f, recipe.n_layer)
    if cfg.ffn_width != recipe.ffn_width or cfg.arch != recipe.arch:
        raise TuneError(f"the recipe is for a {recipe.arch} parent with FFN width {recipe.ffn_width}, "
                        f"{parent.name} is {cfg.arch} with {cfg.ffn_width}; pass the parent it was made from")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    wr = _Writer(tmp, f)
    _write_meta(wr, cfg, recipe)
    for n in ("token_embd.weight", "output_norm.weight", "output.weight"):
        if f.has(n):
            wr.copy(n)
    for i in range(recipe.n_layer):
        _write_attention(wr, i, cfg, recipe)
        _write_ffn(wr, i, recipe)
        if progress:
            progress(1)
    wr.w.write_header_to_file()
    wr.w.write_kv_data_to_file()
    wr.w.write_tensors_to_file()
    wr.w.close()
    sha = sha256_file(tmp)
    want = recipe.info.get("gguf_sha256")
    if want and want != sha:
        tmp.unlink()
        raise TuneError(f"the built GGUF's sha256 {sha[:12]}... differs from the recipe's {want[:12]}... (another "
                        "gguf/numpy version?); export the recipe again on this machine")
    tmp.replace(out)
    return {"path": str(out), "sha256": sha, "bytes": out.stat().st_size,
            "seconds": round(time.perf_counter() - started, 1)}


def check_hmoe(path: str | Path) -> dict:
    """The hmoe metadata of a built GGUF agrees with its tensors; returns the shape read. Raises TuneError (one
    line: rebuild the file) when counts, widths, top-k or expert tensor shapes disagree."""
    from model_runtime.engine.gguf_file import GGUFModelFile
    from model_runtime.errors import ModelRuntimeError

    path = Path(path)
    if not path.exists():
        raise TuneError(f"no GGUF at {path}; build it with `moesearch tune export` or `moesearch tune build`")
    try:
        f = GGUFModelFile(path)
        counts = [int(c) for c in f.hp("expert_group_counts")]
        widths = [int(w) for w in f.hp("expert_group_feed_forward_lengths")]
        top_k, shared = int(f.hp("expert_used_count")), int(f.hp("expert_shared_feed_forward_length", 0))
        n_layer, d = int(f.hp("block_count")), int(f.hp("embedding_length"))
    except (ModelRuntimeError, TypeError, ValueError) as e:
        raise TuneError(f"{path.name} is not a readable moesearch-hmoe file ({e}); rebuild it with "
                        "`moesearch tune build`") from e
    fix = "; rebuild it with `moesearch tune build` from its recipe and parent"
    if len(counts) != len(widths) or not counts:
        raise TuneError(f"{path.name}: {len(counts)} expert group counts but {len(widths)} widths{fix}")
    if not 0 < top_k <= sum(counts):
        raise TuneError(f"{path.name}: top-k {top_k} is not within 1..{sum(counts)} routed experts{fix}")
    for i in range(n_layer):
        want = {f"blk.{i}.ffn_gate_inp.weight": (sum(counts), d)}
        want.update({f"blk.{i}.ffn_gate_exps_g{g}.weight": (c, w, d) for g, (c, w) in enumerate(zip(counts, widths))})
        if shared:
            want[f"blk.{i}.ffn_gate_shexps.weight"] = (1, shared, d)
        for name, shape in want.items():
            got = f.shape(name) if f.has(name) else None
            if got != shape:
                raise TuneError(f"{path.name}: {name} has shape {got}, the metadata implies {shape}{fix}")
    return {"layers": n_layer, "groups": list(zip(counts, widths)), "top_k": top_k, "shared": shared}
