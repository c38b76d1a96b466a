"""The recipe: what turns a dense parent into SearchMoE, small enough to ship (a few MB).

File: one `.npz` (numpy, compressed) with
- `meta`: JSON (format version, parent file name and sha256, architecture, layers, FFN width, the MoE shape,
  LoRA rank/alpha, training state, the sha256 of the GGUF it builds),
- `perm.{i}` [F] int32: layer i's neuron order [shared | group 0 experts | group 1 experts ...],
- `router.{i}` [E, D] float32,
- `lora.{i}.{target}.A` [r, in] / `.B` [out, r] float16 for targets q, k, v, o (attention) and gate, up, down
  (the FFN, in the permuted neuron order, so an expert's adapter is its slice).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tune.errors import TuneError
from tune.moefy import MoEShape

FORMAT = "moesearch-tune-recipe/1"


@dataclass
class Recipe:
    parent_name: str
    parent_sha256: str
    arch: str
    n_layer: int
    ffn_width: int
    shape: MoEShape
    perms: list[np.ndarray]
    routers: list[np.ndarray]
    lora: dict[str, np.ndarray] = field(default_factory=dict)
    lora_rank: int = 0
    lora_alpha: float = 0.0
    info: dict = field(default_factory=dict)  # training steps, metrics, built GGUF sha256 ...

    def meta(self) -> dict:
        return {"format": FORMAT, "parent_name": self.parent_name, "parent_sha256": self.parent_sha256,
                "arch": self.arch, "n_layer": self.n_layer, "ffn_width": self.ffn_width,
                "shared": self.shape.shared, "groups": [list(g) for g in self.shape.groups],
                "top_k": self.shape.top_k, "lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha,
                "info": self.info}


def save_recipe(r: Recipe, path: str | Path) -> Path:
    path = Path(path)
    arrays = {"meta": np.array(json.dumps(r.meta()))}
    for i, (p, w) in enumerate(zip(r.perms, r.routers)):
        arrays[f"perm.{i}"] = np.asarray(p, dtype=np.int32)
        arrays[f"router.{i}"] = np.asarray(w, dtype=np.float32)
    for k, v in r.lora.items():
        arrays[f"lora.{k}"] = np.asarray(v, dtype=np.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return path


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    if not path.exists():
        raise TuneError(f"no recipe at {path}; run `moesearch tune moefy` (and `tune train`) first, or pass --recipe")
    try:
        z = np.load(path, allow_pickle=False)
        m = json.loads(str(z["meta"]))
    except Exception as e:  # truncated or not an npz
        raise TuneError(f"recipe {path} cannot be read ({e}); export it again with `moesearch tune export`") from e
    if m.get("format") != FORMAT:
        raise TuneError(f"{path} is not a {FORMAT} recipe (format {m.get('format')!r}); export it again")
    n = m["n_layer"]
    try:
        perms = [z[f"perm.{i}"].astype(np.int64) for i in range(n)]
        routers = [z[f"router.{i}"] for i in range(n)]
    except KeyError as e:
        raise TuneError(f"recipe {path} lacks {e}; it is incomplete: export it again") from e
    lora = {k[5:]: z[k] for k in z.files if k.startswith("lora.")}
    shape = MoEShape(m["shared"], tuple(tuple(g) for g in m["groups"]), m["top_k"])
    r = Recipe(m["parent_name"], m["parent_sha256"], m["arch"], n, m["ffn_width"], shape, perms, routers, lora,
               m["lora_rank"], m["lora_alpha"], m.get("info", {}))
    check_recipe(r, path)
    return r


def check_recipe(r: Recipe, path: Path | str = "recipe") -> None:
    """The recipe's arrays agree with its shape (each perm a permutation of F, routers [E, D])."""
    e = r.shape.n_experts
    if r.shape.shared + sum(r.shape.widths) != r.ffn_width:
        raise TuneError(f"recipe {path}: shared + expert widths != FFN width {r.ffn_width}; export it again")
    for i, (p, w) in enumerate(zip(r.perms, r.routers)):
        if p.shape != (r.ffn_width,) or not np.array_equal(np.sort(p), np.arange(r.ffn_width)):
            raise TuneError(f"recipe {path}: layer {i}'s neuron order is not a permutation; export it again")
        if w.shape[0] != e:
            raise TuneError(f"recipe {path}: layer {i}'s router has {w.shape[0]} rows for {e} experts; export again")
