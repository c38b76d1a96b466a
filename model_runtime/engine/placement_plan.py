"""Placement plans: the device of every routed expert, decided from a routing profile and a GPU memory budget.

Why "most used first" is the right order even when experts differ in size: at decode an expert's weights are read
once per step in which any token picks it, so an expert of ``b`` bytes chosen with probability ``p`` costs about
``p * b / bandwidth`` per step where it lives; moving it to the GPU saves ``p * b * (1/bw_cpu - 1/bw_gpu)`` and uses
``b`` bytes of budget. The saving per byte of budget is proportional to ``p`` alone, so the greedy fill by frequency
(skipping an expert that no longer fits and going on with the next) is the usual greedy knapsack order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

from model_runtime.engine.routing_profile import RoutingProfile, layer_key

Strategy = Literal["all-gpu", "all-cpu", "frequency"]
STRATEGIES: tuple[str, ...] = ("all-gpu", "all-cpu", "frequency")


@dataclass
class Placement:
    """The device of every routed expert of every layer: ``devices[layer][expert]`` is ``"cuda"`` or ``"cpu"``."""

    devices: dict[str, list[str]]
    strategy: str = "all-cpu"
    gpu_budget_bytes: int | None = None
    gpu_bytes: int = 0
    gpu_device: str = "cuda"

    def gpu_experts(self, layer: int | str) -> list[int]:
        return [e for e, d in enumerate(self.devices[str(layer)]) if d != "cpu"]

    def gpu_fraction(self) -> float:
        total = sum(len(v) for v in self.devices.values())
        return sum(len(self.gpu_experts(k)) for k in self.devices) / total if total else 0.0

    def summary(self) -> str:
        total = sum(len(v) for v in self.devices.values())
        on_gpu = sum(len(self.gpu_experts(k)) for k in self.devices)
        budget = "no budget" if self.gpu_budget_bytes is None else f"budget {self.gpu_budget_bytes / 2**30:.2f} GiB"
        return (f"placement {self.strategy}: {on_gpu}/{total} routed experts on the GPU "
                f"({self.gpu_bytes / 2**30:.2f} GiB, {budget})")

    def to_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "gpu_budget_bytes": self.gpu_budget_bytes, "gpu_bytes": self.gpu_bytes,
                "gpu_device": self.gpu_device, "devices": self.devices}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Placement:
        return cls(devices={str(k): list(v) for k, v in data["devices"].items()}, strategy=data.get("strategy", ""),
                   gpu_budget_bytes=data.get("gpu_budget_bytes"), gpu_bytes=int(data.get("gpu_bytes", 0)),
                   gpu_device=data.get("gpu_device", "cuda"))


def _expert_sizes(profile: RoutingProfile | None, expert_bytes: int | Mapping[str, int | Sequence[int]],
                  layers: Iterable[str] | None) -> dict[str, list[int]]:
    if isinstance(expert_bytes, Mapping):
        sizes: dict[str, list[int]] = {}
        for key, value in expert_bytes.items():
            if isinstance(value, int):
                n = len(profile.counts.get(str(key), [])) if profile else 0
                if not n:
                    raise ValueError(f"layer {key}: give per-expert sizes (a list), the profile has no count for it")
                sizes[str(key)] = [value] * n
            else:
                sizes[str(key)] = [int(v) for v in value]
        return sizes
    if profile is None or not profile.counts:
        raise ValueError("with one size for all experts, the profile must say which layers and experts exist")
    keys = list(layers) if layers is not None else list(profile.counts)
    return {k: [int(expert_bytes)] * len(profile.counts[k]) for k in keys}


def plan_placement(profile: RoutingProfile | None, expert_bytes: int | Mapping[str, int | Sequence[int]],
                   gpu_budget_bytes: int | None, strategy: Strategy | str = "frequency", *,
                   gpu_device: str = "cuda") -> Placement:
    """Decide the device of each routed expert.

    ``expert_bytes``: the bytes an expert takes on the GPU (prepared weights), either one number for every expert of
    the layers in ``profile``, or per layer (``{layer: bytes}`` or ``{layer: [bytes per expert]}``, which also says
    which layers and experts exist). ``gpu_budget_bytes``: GPU memory for routed experts (``None``: unlimited).

    - ``all-gpu``: every expert on the GPU (the budget, when given, must hold them all);
    - ``all-cpu``: every expert on the CPU;
    - ``frequency``: the most frequently chosen experts (over all layers) on the GPU while they fit in the budget;
      ties go to the earlier layer and expert, so a plan is reproducible. Without a profile every frequency is 0
      and the fill is in layer order.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown placement strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    sizes = _expert_sizes(profile, expert_bytes, None)
    total = sum(sum(v) for v in sizes.values())
    devices = {k: ["cpu"] * len(v) for k, v in sizes.items()}
    if strategy == "all-cpu":
        return Placement(devices, strategy, gpu_budget_bytes, 0, gpu_device)
    if strategy == "all-gpu":
        if gpu_budget_bytes is not None and total > gpu_budget_bytes:
            raise ValueError(f"all-gpu placement needs {total / 2**30:.2f} GiB for routed experts, over the budget "
                             f"of {gpu_budget_bytes / 2**30:.2f} GiB; raise the budget or use the frequency strategy")
        return Placement({k: [gpu_device] * len(v) for k, v in sizes.items()}, strategy, gpu_budget_bytes, total,
                         gpu_device)
    budget = math.inf if gpu_budget_bytes is None else gpu_budget_bytes
    order = sorted(((-(profile.frequency(k)[e] if profile and e < len(profile.counts.get(k, [])) else 0.0),
                     _layer_order(k), e, k) for k, v in sizes.items() for e in range(len(v))))
    used = 0
    for _, _, e, k in order:
        b = sizes[k][e]
        if used + b <= budget:
            devices[k][e] = gpu_device
            used += b
    return Placement(devices, strategy, gpu_budget_bytes, used, gpu_device)


def _layer_order(key: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in key.split("."))


def expert_nbytes(width: int, dim: int, bits: int = 4, group_size: int = 128) -> int:
    """GPU bytes of one expert (gate, up, down) in the Triton kernels' format: packed weights plus float32 scales."""
    fp = -(-width // group_size) * group_size
    dp = -(-dim // group_size) * group_size
    weights = (2 * fp * dp + dim * fp) * bits // 8
    scales = (2 * fp * (dp // group_size) + dim * (fp // group_size)) * 4
    return weights + scales


def config_expert_bytes(cfg: Any, bits: int = 4, group_size: int = 128) -> dict[str, list[int]]:
    """The same from a ``ModelConfig`` alone: known before any weight is read."""
    if not cfg.group_counts:
        return {}
    row = [expert_nbytes(fw, cfg.d_model, bits, group_size) for n, fw in zip(cfg.group_counts, cfg.group_widths)
           for _ in range(n)]
    return {layer_key(i): list(row) for i in range(cfg.n_layer)}


def model_expert_bytes(model: Any, bits: int = 4, group_size: int = 128) -> dict[str, list[int]]:
    """Per MoE layer of an engine ``Transformer``: the GPU bytes of each routed expert (groups in order)."""
    sizes: dict[str, list[int]] = {}
    for i, blk in enumerate(model.blocks):
        layer = getattr(blk.ffn, "layer", blk.ffn)  # a PlacedMoELayer routes with its original layer
        if getattr(layer, "routed", None):
            d = layer.routed[0].dim
            sizes[layer_key(i)] = [expert_nbytes(fw, d, bits, group_size)
                                   for n, fw in zip(layer.group_sizes, layer.group_widths) for _ in range(n)]
    return sizes
