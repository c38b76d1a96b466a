"""Routing profiles: how often each routed expert of each MoE layer is chosen, recorded from the router's choices.

``ProfileRecorder`` counts the router's choices (``attach_recorder`` hooks every MoE layer of a model); a profile is
saved and reloaded as JSON; ``calibrate`` records one from a few prompts. Placement plans and the expert-cache
simulation read them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

PROFILE_VERSION = 1

# Text for calibration runs (routing profiles, activation outlier channels): prose, code, French, science.
CALIBRATION_TEXT = (
    "A search engine reads the question, breaks it into smaller questions, searches the web and local documents, "
    "reads the pages it found and writes an answer that cites its sources. Mixture-of-Experts language models route "
    "each token to a few experts out of many, so only a small part of the weights is read for every token.",
    "def merge(a, b):\n    out = []\n    while a and b:\n        out.append(a.pop(0) if a[0] < b[0] else b.pop(0))\n"
    "    return out + a + b\n",
    "The French Revolution began in 1789. Its causes included financial crisis, food shortages and new ideas about "
    "rights and government; it ended the monarchy and reshaped Europe for the century that followed.",
    "Pour préparer une pâte à crêpes, mélangez la farine, les œufs et le lait, puis laissez reposer une heure.",
    "Photosynthesis converts light energy into chemical energy: water and carbon dioxide become glucose and oxygen.",
)


def layer_key(layer: int | str, group: int | None = None) -> str:
    """The profile/placement key of a layer's routed expert group: ``"3"``, or ``"3.1"`` for its second group."""
    return str(layer) if group is None else f"{layer}.{group}"


@dataclass
class RoutingProfile:
    """How often each routed expert of each layer was chosen: ``counts[layer][expert]``, over ``tokens[layer]``."""

    counts: dict[str, list[int]] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, layer: int | str, topk_ids: torch.Tensor, num_experts: int) -> None:
        """Count one batch of router choices ``topk_ids [T, K]`` (``-1`` = none) of ``layer``."""
        key = str(layer)
        ids = topk_ids.detach().reshape(-1).to("cpu", torch.int64)
        ids = ids[(ids >= 0) & (ids < num_experts)]
        batch = torch.bincount(ids, minlength=num_experts).tolist()
        old = self.counts.get(key)
        if old is None or len(old) != num_experts:
            old = [0] * num_experts if old is None else (old + [0] * num_experts)[:num_experts]
        self.counts[key] = [a + b for a, b in zip(old, batch)]
        rows = int(topk_ids.shape[0]) if topk_ids.dim() > 1 else 1
        self.tokens[key] = self.tokens.get(key, 0) + rows

    def frequency(self, layer: int | str) -> list[float]:
        """Per expert: the fraction of the layer's tokens that chose it (0 for a layer never seen)."""
        key = str(layer)
        counts = self.counts.get(key, [])
        seen = self.tokens.get(key, 0)
        return [c / seen if seen else 0.0 for c in counts]

    def merge(self, other: RoutingProfile) -> RoutingProfile:
        merged = RoutingProfile(counts={k: list(v) for k, v in self.counts.items()}, tokens=dict(self.tokens),
                                meta={**self.meta, **other.meta})
        for key, counts in other.counts.items():
            mine = merged.counts.get(key, [0] * len(counts))
            n = max(len(mine), len(counts))
            mine, theirs = mine + [0] * (n - len(mine)), counts + [0] * (n - len(counts))
            merged.counts[key] = [a + b for a, b in zip(mine, theirs)]
            merged.tokens[key] = merged.tokens.get(key, 0) + other.tokens.get(key, 0)
        return merged

    def to_json(self) -> dict[str, Any]:
        return {"version": PROFILE_VERSION, "meta": self.meta, "tokens": self.tokens, "counts": self.counts}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RoutingProfile:
        if not isinstance(data, Mapping) or "counts" not in data:
            raise ValueError("not a routing profile: expected an object with 'counts'")
        if data.get("version", PROFILE_VERSION) != PROFILE_VERSION:
            raise ValueError(f"routing profile version {data.get('version')} is not {PROFILE_VERSION}")
        counts = {str(k): [int(c) for c in v] for k, v in data["counts"].items()}
        tokens = {str(k): int(v) for k, v in data.get("tokens", {}).items()}
        return cls(counts=counts, tokens=tokens, meta=dict(data.get("meta", {})))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> RoutingProfile:
        path = Path(path)
        try:
            return cls.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"routing profile {path} does not exist; record one with a calibration run")
        except (json.JSONDecodeError, ValueError) as err:
            raise ValueError(f"routing profile {path} is not valid: {err}") from err


class ProfileRecorder:
    """Counts routing choices into a ``RoutingProfile``; thread-safe, cheap (one ``bincount`` per call).

    Use it as the routing hook of the MoE layers: ``recorder.record(layer_key, topk_ids, num_experts)`` after the
    router picked ``topk_ids`` (``attach_recorder`` does it for a model). Serving can keep recording (``enabled``)
    and re-plan from ``recorder.profile`` at times of its choosing.
    """

    def __init__(self, profile: RoutingProfile | None = None) -> None:
        self.profile = profile or RoutingProfile()
        self.enabled = True
        self._lock = threading.Lock()

    def record(self, layer: int | str, topk_ids: torch.Tensor, num_experts: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.profile.add(layer, topk_ids, num_experts)


def _global_ids(layer: Any, routes: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Back from per-group local ids (``-1`` elsewhere) to ids over all the layer's routed experts."""
    out = None
    for off, (ids, _) in zip(layer.offsets, routes):
        g = torch.where(ids >= 0, ids + off, torch.full_like(ids, -1))
        out = g if out is None else torch.maximum(out, g)
    return out


def attach_recorder(model: Any, recorder: ProfileRecorder) -> Callable[[], None]:
    """Count the routing of every MoE layer of ``model`` (an engine ``Transformer``) into ``recorder``.

    The hook wraps each layer's ``route`` (the step that picks the experts); returns a function that removes it.
    """
    undo = []
    for i, blk in enumerate(model.blocks):
        layer = blk.ffn
        target = getattr(layer, "layer", layer)  # a PlacedMoELayer routes with its original layer
        if not getattr(target, "routed", None):
            continue
        original = target.route

        def route(x, _layer=target, _orig=original, _key=layer_key(i)):
            routes = _orig(x)
            if routes:
                recorder.record(_key, _global_ids(_layer, routes), _layer.n_routed)
            return routes

        target.route = route
        undo.append(target)

    def detach() -> None:
        for target in undo:
            target.__dict__.pop("route", None)

    return detach


def calibrate(model: Any, prompts: Iterable[Sequence[int]], profile: RoutingProfile | None = None) -> RoutingProfile:
    """Run ``model`` over token sequences (one prefill each) and return the routing profile they produced."""
    recorder = ProfileRecorder(profile)
    detach = attach_recorder(model, recorder)
    try:
        for tokens in prompts:
            model.forward(list(tokens), model.new_cache(max(len(tokens), 16)))
    finally:
        detach()
    recorder.profile.meta.setdefault("prompts", 0)
    return recorder.profile
