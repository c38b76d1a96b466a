"""CPU/GPU placement of routed experts: routing profiles, placement plans, and the split expert forward.

A model larger than the GPU keeps attention, router and shared experts on the GPU and puts each routed expert on
the GPU or the CPU. Which ones go to the GPU is decided from a *routing profile*: how often each expert of each MoE
layer was chosen during a calibration run (``ProfileRecorder`` counts the router's choices; the profile is saved and
reloaded as JSON). ``plan_placement`` fills a GPU memory budget with the most used experts.

Why "most used first" is the right order even when experts differ in size: at decode an expert's weights are read
once per step in which any token picks it, so an expert of ``b`` bytes chosen with probability ``p`` costs about
``p * b / bandwidth`` per step where it lives; moving it to the GPU saves ``p * b * (1/bw_cpu - 1/bw_gpu)`` and uses
``b`` bytes of budget. The saving per byte of budget is proportional to ``p`` alone, so the greedy fill by frequency
(skipping an expert that no longer fits and going on with the next) is the usual greedy knapsack order.

``HybridExperts`` runs one routed group placed this way: the GPU work (the group's GPU-resident experts and the
shared expert) is submitted first, asynchronously; the CPU computes its experts meanwhile; the two are summed.
"""

from __future__ import annotations

import copy
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import torch

from model_runtime.engine.kernels import ExpertKernel, register_kernel

Strategy = Literal["all-gpu", "all-cpu", "frequency"]
STRATEGIES: tuple[str, ...] = ("all-gpu", "all-cpu", "frequency")
PROFILE_VERSION = 1


def layer_key(layer: int | str, group: int | None = None) -> str:
    """The profile/placement key of a layer's routed expert group: ``"3"``, or ``"3.1"`` for its second group."""
    return str(layer) if group is None else f"{layer}.{group}"


# ---------------------------------------------------------------------------------------------------- profile


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
    router picked ``topk_ids``; or ``recorder.hook(layer_key, num_experts)`` gives a callable for that. Serving can
    keep recording (``enabled``) and re-plan from ``recorder.profile`` at times of its choosing.
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

    def hook(self, layer: int | str, num_experts: int) -> Callable[[torch.Tensor], None]:
        return lambda topk_ids: self.record(layer, topk_ids, num_experts)


# ---------------------------------------------------------------------------------------------------- plan


@dataclass
class Placement:
    """The device of every routed expert of every layer: ``devices[layer][expert]`` is ``"cuda"`` or ``"cpu"``."""

    devices: dict[str, list[str]]
    strategy: str = "all-cpu"
    gpu_budget_bytes: int | None = None
    gpu_bytes: int = 0
    gpu_device: str = "cuda"

    def device_of(self, layer: int | str, expert: int) -> str:
        return self.devices[str(layer)][expert]

    def gpu_experts(self, layer: int | str) -> list[int]:
        return [e for e, d in enumerate(self.devices[str(layer)]) if d != "cpu"]

    def cpu_experts(self, layer: int | str) -> list[int]:
        return [e for e, d in enumerate(self.devices[str(layer)]) if d == "cpu"]

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


# ---------------------------------------------------------------------------------------------------- split forward


def subset_expert_weights(w: Any, experts: Sequence[int]) -> Any:
    """The ``ExpertWeights`` of the given experts only (stacked tensors or per-expert lists; ``widths`` kept)."""
    cls = type(w)
    idx = list(experts)
    if isinstance(w.gate, torch.Tensor):
        index = torch.tensor(idx, dtype=torch.long, device=w.gate.device)
        sub = cls(gate=w.gate.index_select(0, index), up=w.up.index_select(0, index),
                  down=w.down.index_select(0, index), activation=w.activation)
        widths = getattr(w, "widths", None)
        if widths is not None:
            _set_widths(sub, [int(widths[i]) for i in idx])
        return sub
    return cls(gate=[w.gate[i] for i in idx], up=[w.up[i] for i in idx], down=[w.down[i] for i in idx],
               activation=w.activation)


def _set_widths(w: Any, widths: list[int]) -> None:
    try:
        w.widths = widths
    except AttributeError:  # a slotted dataclass without the field: the padding stays exact, only slower
        pass


def _local_map(num_experts: int, members: Sequence[int], device: torch.device) -> torch.Tensor:
    """``[E + 1]``: global expert -> index among ``members`` or -1; the extra last entry maps ``-1`` to ``-1``."""
    m = torch.full((num_experts + 1,), -1, dtype=torch.int64)
    for local, e in enumerate(members):
        m[e] = local
    return m.to(device)


def _remap(ids: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    # -1 indexes the table's last entry, which is -1.
    return table[ids]


def _num_experts(w: Any) -> int:
    return int(w.gate.shape[0]) if isinstance(w.gate, torch.Tensor) else len(w.gate)


class HybridExperts:
    """One routed expert group split between a GPU-side and a CPU-side kernel.

    ``devices[e]`` is ``"cpu"`` or the GPU device of expert ``e``; ``gpu_kernel`` / ``cpu_kernel`` are expert
    kernels (``prepare``/``forward``, see ``kernels.base``). Pairs routed to experts of the other side are passed to
    each kernel as ``-1``, which every kernel skips, so each side computes exactly its own experts' share.

    ``submit_gpu`` queues the GPU side and returns its (not yet computed) result on the GPU; ``run_cpu`` computes the
    CPU side. ``forward`` does both, GPU first, and adds them on the device of ``x``; ``PlacedMoELayer`` submits the
    GPU work of all its groups and the shared expert before any CPU work, so that they overlap.
    """

    def __init__(self, weights: Any, devices: Sequence[str], gpu_kernel: Any, cpu_kernel: Any, *,
                 keep_weights: bool = False) -> None:
        self.num_experts = _num_experts(weights)
        if len(devices) != self.num_experts:
            raise ValueError(f"{len(devices)} devices given for {self.num_experts} experts")
        self.gpu_kernel = gpu_kernel
        self.cpu_kernel = cpu_kernel
        self.gpu_device = torch.device(getattr(gpu_kernel, "device", "cpu"))
        self._weights = weights if keep_weights else None
        self._apply(weights, list(devices))

    def _apply(self, weights: Any, devices: list[str]) -> None:
        self.devices = devices
        self.gpu_members = [e for e, d in enumerate(devices) if d != "cpu"]
        self.cpu_members = [e for e, d in enumerate(devices) if d == "cpu"]
        self.gpu_prepared = (self.gpu_kernel.prepare(subset_expert_weights(weights, self.gpu_members))
                             if self.gpu_members else None)
        self.cpu_prepared = (self.cpu_kernel.prepare(subset_expert_weights(weights, self.cpu_members))
                             if self.cpu_members else None)
        self.gpu_map = _local_map(self.num_experts, self.gpu_members, self.gpu_device)
        self.cpu_map = _local_map(self.num_experts, self.cpu_members, torch.device("cpu"))

    def replace(self, devices: Sequence[str]) -> None:
        """Move experts to new devices (re-planning while serving); needs ``keep_weights=True``."""
        if list(devices) == self.devices:
            return
        if self._weights is None:
            raise RuntimeError("this expert group did not keep its weights (keep_weights=False): it cannot move")
        self._apply(self._weights, list(devices))

    @property
    def has_gpu(self) -> bool:
        return self.gpu_prepared is not None

    @property
    def has_cpu(self) -> bool:
        return self.cpu_prepared is not None

    def submit_gpu(self, x_gpu: torch.Tensor, topk_ids: torch.Tensor, topk_weights: torch.Tensor) -> torch.Tensor:
        """Queue the GPU-resident experts' share; inputs on the GPU device; the result stays there (asynchronous)."""
        ids = _remap(topk_ids.to(self.gpu_device, torch.int64), self.gpu_map)
        return self.gpu_kernel.forward(self.gpu_prepared, x_gpu, ids, topk_weights.to(self.gpu_device))

    def run_cpu(self, x_cpu: torch.Tensor, topk_ids: torch.Tensor, topk_weights: torch.Tensor) -> torch.Tensor:
        """The CPU-resident experts' share, computed now; inputs and result on the CPU."""
        ids = _remap(topk_ids.to("cpu", torch.int64), self.cpu_map)
        return self.cpu_kernel.forward(self.cpu_prepared, x_cpu, ids, topk_weights.to("cpu"))

    def forward(self, x: torch.Tensor, topk_ids: torch.Tensor, topk_weights: torch.Tensor) -> torch.Tensor:
        y_gpu = self.submit_gpu(x.to(self.gpu_device), topk_ids, topk_weights) if self.has_gpu else None
        y_cpu = self.run_cpu(x.to("cpu"), topk_ids, topk_weights) if self.has_cpu else None
        return _combine(x, [y_gpu], [y_cpu])

    __call__ = forward


def _combine(x: torch.Tensor, gpu_parts: list, cpu_parts: list) -> torch.Tensor:
    """Sum partial outputs (GPU ones still in flight, CPU ones done) as float32 on the device of ``x``."""
    y = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    for part in (*cpu_parts, *gpu_parts):
        if part is not None:
            y = y + part.to(device=x.device, dtype=torch.float32)
    return y


# ---------------------------------------------------------------------------------------------------- the MoE layer


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
        target = layer.layer if isinstance(layer, PlacedMoELayer) else layer
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


class PlacedMoELayer:
    """An engine ``MoELayer`` whose routed experts live on the GPU or the CPU, expert by expert.

    Routing stays with the original layer (its router, top-k, gating). The shared group (and its sigmoid gate) runs
    on the GPU kernel. ``forward``: routes on the layer's device; copies the hidden states to the GPU once; submits
    the shared group and every group's GPU experts (asynchronous); computes every group's CPU experts meanwhile;
    adds everything on the device of ``x``. Drop-in for ``MoELayer`` in the engine's blocks.
    """

    def __init__(self, layer: Any, routed: Sequence[Any], shared: Any | None, devices: Sequence[str],
                 gpu_kernel: Any, cpu_kernel: Any, *, keep_weights: bool = False) -> None:
        if len(devices) != layer.n_routed:
            raise ValueError(f"{len(devices)} devices given for {layer.n_routed} routed experts")
        self.layer = _routing_only(layer)
        self.gpu_kernel = gpu_kernel
        self.cpu_kernel = cpu_kernel
        self.gpu_device = torch.device(getattr(gpu_kernel, "device", "cpu"))
        self.groups = [HybridExperts(w, list(devices[off:off + n]), gpu_kernel, cpu_kernel, keep_weights=keep_weights)
                       for w, off, n in zip(routed, layer.offsets, layer.group_sizes)]
        self.shared_count = 0 if shared is None else _num_experts(shared)
        self._shared = gpu_kernel.prepare(shared) if shared is not None else None
        gate = getattr(layer, "shared_gate", None)
        self._shared_gate = gate.float().to(self.gpu_device) if gate is not None else None

    @property
    def devices(self) -> list[str]:
        return [d for g in self.groups for d in g.devices]

    def route_on(self, device: str | torch.device) -> PlacedMoELayer:
        """Run the router on ``device`` (where the hidden states are: the GPU when attention runs there)."""
        if self.layer.router is not None:
            self.layer.router = self.layer.router.to(device)
        return self

    def replace(self, devices: Sequence[str]) -> None:
        for g, off, n in zip(self.groups, self.layer.offsets, self.layer.group_sizes):
            g.replace(list(devices[off:off + n]))

    def route(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return self.layer.route(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        routes = self.route(x) if self.groups else []
        # The CPU needs the routing and the hidden states: copy them now, before any expert work is queued on the
        # GPU (a device-to-host copy queued after it would wait for it and nothing would overlap).
        host = [(ids.to("cpu"), w.to("cpu")) for ids, w in routes] if x.device.type != "cpu" else routes
        active = [bool((ids >= 0).any()) for ids, _ in host]
        need_cpu = any(a and g.has_cpu for g, a in zip(self.groups, active))
        need_gpu = self._shared is not None or any(a and g.has_gpu for g, a in zip(self.groups, active))
        x_cpu = x.to("cpu") if need_cpu else None
        x_gpu = x.to(self.gpu_device, non_blocking=True) if need_gpu else None
        # 1. GPU: the shared group and the GPU-resident experts, queued (kernel launches return at once)
        gpu_parts = []
        if self._shared is not None:
            t = x.shape[0]
            if self.shared_count == 1:
                ys = self.gpu_kernel.dense(self._shared, x_gpu)
            else:
                ids = torch.arange(self.shared_count, device=self.gpu_device).expand(t, self.shared_count)
                ys = self.gpu_kernel.forward(self._shared, x_gpu, ids,
                                             torch.ones(t, self.shared_count, device=self.gpu_device))
            if self._shared_gate is not None:
                ys = ys.float() * torch.sigmoid(x_gpu.float() @ self._shared_gate)[:, None]
            gpu_parts.append(ys)
        for g, (ids, w), a in zip(self.groups, routes, active):
            if a and g.has_gpu:
                gpu_parts.append(g.submit_gpu(x_gpu, ids, w))
        # 2. the CPU-resident experts, computed while the GPU works
        cpu_parts = [g.run_cpu(x_cpu, ids, w) for g, (ids, w), a in zip(self.groups, host, active)
                     if a and g.has_cpu]
        # 3. the sum, on the device of x
        return _combine(x, gpu_parts, cpu_parts)

    __call__ = forward


def _routing_only(layer: Any) -> Any:
    """A shallow copy of an engine ``MoELayer`` that keeps what routing needs (router, spec, group sizes) and drops
    its weights and prepared kernels (the placed groups hold their own)."""
    light = copy.copy(layer)
    light.routed = [_meta_like(w) for w in layer.routed]
    light.shared = _meta_like(layer.shared) if layer.shared is not None else None
    light._prepared = []
    light._shared_prepared = None
    return light


def _meta_like(w: Any) -> Any:
    if not isinstance(w.gate, torch.Tensor):
        return w
    meta = lambda t: torch.empty(t.shape, device="meta")  # noqa: E731
    return type(w)(meta(w.gate), meta(w.up), meta(w.down), w.activation)


def expert_nbytes(width: int, dim: int, bits: int = 4, group_size: int = 128) -> int:
    """GPU bytes of one expert (gate, up, down) in the Triton kernels' format: packed weights plus float32 scales."""
    fp = -(-width // group_size) * group_size
    dp = -(-dim // group_size) * group_size
    weights = (2 * fp * dp + dim * fp) * bits // 8
    scales = (2 * fp * (dp // group_size) + dim * (fp // group_size)) * 4
    return weights + scales


def model_expert_bytes(model: Any, bits: int = 4, group_size: int = 128) -> dict[str, list[int]]:
    """Per MoE layer of an engine ``Transformer``: the GPU bytes of each routed expert (groups in order)."""
    sizes: dict[str, list[int]] = {}
    for i, blk in enumerate(model.blocks):
        layer = blk.ffn.layer if isinstance(blk.ffn, PlacedMoELayer) else blk.ffn
        if getattr(layer, "routed", None):
            d = layer.routed[0].dim
            sizes[layer_key(i)] = [expert_nbytes(fw, d, bits, group_size)
                                   for n, fw in zip(layer.group_sizes, layer.group_widths) for _ in range(n)]
    return sizes


def _float_weights(layer: Any) -> bool:
    ws = [*(layer.routed or []), *([layer.shared] if layer.shared is not None else [])]
    return all(w.gate.device.type != "meta" for w in ws)


def place_model(model: Any, placement: Placement, gpu_kernel: Any, cpu_kernel: Any, *,
                weights_for_layer: Callable[[int], Any] | None = None, keep_weights: bool = False) -> Any:
    """Replace every FFN layer of an engine ``Transformer`` by a ``PlacedMoELayer`` following ``placement``.

    Routed experts go where the placement says (layers it does not name: all on the CPU); shared experts and dense
    FFNs go to the GPU kernel. The kernels quantize from float32 weights: either the model still holds them (loaded
    with the ``reference`` kernel), or ``weights_for_layer(i)`` returns a ``MoELayer`` of layer ``i`` that does (for
    example re-read from the GGUF file one layer at a time, so that only one layer is ever in float32).
    """
    for i, blk in enumerate(model.blocks):
        layer = blk.ffn.layer if isinstance(blk.ffn, PlacedMoELayer) else blk.ffn
        if not getattr(layer, "routed", None) and getattr(layer, "shared", None) is None:
            continue
        source = layer if _float_weights(layer) else (weights_for_layer(i) if weights_for_layer else None)
        if source is None or not _float_weights(source):
            raise ValueError(f"layer {i} no longer holds float weights: load the model with the reference kernel "
                             "or pass weights_for_layer")
        devices = placement.devices.get(layer_key(i))
        if devices is None:
            devices = ["cpu"] * source.n_routed
        blk.ffn = PlacedMoELayer(source, source.routed, source.shared, devices, gpu_kernel, cpu_kernel,
                                 keep_weights=keep_weights)
    return model


class DeferredKernel(ExpertKernel):
    """Registered as ``placement-deferred``: loads a model without preparing its FFN weights (no memory, no time),
    because ``place_model`` prepares them afterwards on the kernels of each side. The output head keeps the base
    class's float32 ``linear``."""

    name = "placement-deferred"
    device = "cpu"

    def prepare(self, w: Any) -> None:
        return None

    def forward(self, prepared, x, topk_ids, topk_weights):
        raise RuntimeError("this model's experts were not placed yet: call place_model / place_llm")


# ---------------------------------------------------------------------------------------------------- from settings

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


def _gpu_budget_bytes(settings: Any, device: str) -> int | None:
    gb = getattr(settings, "expert_gpu_budget_gb", None)
    if gb is not None:
        return int(gb * 2**30)
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return int(free * 0.8)  # leave room for attention, the KV cache and the kernels' scratch buffers
    return None


def place_llm(llm: Any, settings: Any, *, gpu_kernel: Any = None, cpu_kernel: Any = None,
              profile: RoutingProfile | None = None) -> Placement:
    """Place the routed experts of a loaded ``TorchMoELLM`` as ``settings`` say; returns the plan.

    Settings used: ``expert_placement`` (all-gpu, all-cpu, frequency), ``expert_gpu_budget_gb`` (default: 80% of
    the GPU's free memory), ``routing_profile`` (a JSON profile; for ``frequency``, recorded with a short calibration
    run over built-in text and saved there when the file does not exist yet), ``torch_gpu_kernels`` (default
    ``cuda-int4``) for the GPU side and ``torch_kernels`` for the CPU side. The float weights each kernel quantizes
    from are re-read from the GGUF file one layer at a time.

    Re-planning while serving: keep a ``ProfileRecorder`` attached (``attach_recorder(llm.model, recorder)``) and,
    between requests, call ``place_llm(llm, settings, profile=recorder.profile)`` (or a merge of it with the saved
    profile): the experts whose device changes are prepared again on their new side.
    """
    from model_runtime.engine.arch import config_from_gguf
    from model_runtime.engine.gguf_file import GGUFModelFile
    from model_runtime.engine.kernels import get_kernel
    from model_runtime.engine.model import _load_ffn

    strategy = getattr(settings, "expert_placement", "frequency")
    gpu_kernel = gpu_kernel or get_kernel(getattr(settings, "torch_gpu_kernels", "cuda-int4"))
    cpu_name = getattr(settings, "torch_kernels", "cpu")
    cpu_kernel = cpu_kernel or get_kernel(cpu_name if cpu_name and not cpu_name.startswith("cuda") else "cpu")
    model = llm.model
    bits = getattr(gpu_kernel, "bits", 4)
    group = getattr(gpu_kernel, "group_size", 128)
    sizes = model_expert_bytes(model, bits, group)
    f = GGUFModelFile(llm.path)
    try:
        cfg = config_from_gguf(f)
        reference = get_kernel("reference")

        def layer_weights(i: int) -> Any:
            return _load_ffn(f, cfg, f"blk.{i}.", reference)

        profile_path = getattr(settings, "routing_profile", None)
        if profile is not None:
            pass
        elif profile_path is not None and Path(profile_path).exists():
            profile = RoutingProfile.load(profile_path)
        elif strategy == "frequency":
            # calibration run: every routed expert on the CPU for now, the routing of built-in text counted
            place_model(model, plan_placement(None, sizes, 0, "all-cpu"), gpu_kernel, cpu_kernel,
                        weights_for_layer=layer_weights)
            profile = calibrate(model, [llm.tokenize(text) for text in CALIBRATION_TEXT])
            profile.meta.update(model=str(getattr(llm, "path", "")), source="built-in calibration text")
            if profile_path is not None:
                profile.save(profile_path)
        plan = plan_placement(profile, sizes, _gpu_budget_bytes(settings, gpu_kernel.device), strategy)
        place_model(model, plan, gpu_kernel, cpu_kernel, weights_for_layer=layer_weights)
    finally:
        f.close()
    return plan


def load_placed_llm(settings: Any, *, gpu_kernel: Any = None, cpu_kernel: Any = None) -> Any:
    """The ``torch`` backend on a CUDA machine: the model loaded on the CPU (compact, quantized), then its routed
    experts placed between GPU and CPU by ``place_llm``. Raises a user-facing error where there is no GPU."""
    from model_runtime import load_llm
    from model_runtime.engine.kernels.triton_kernels import GPUUnavailableError, triton_runnable

    if gpu_kernel is None:
        ok, why = triton_runnable("cuda")
        if not ok:
            raise GPUUnavailableError(f"--device cuda needs a CUDA GPU and triton: {why}; use --device cpu")
    from model_runtime.engine.kernels import get_kernel

    cpu_name = getattr(settings, "torch_kernels", "cpu")
    if not cpu_name or cpu_name.startswith("cuda") or cpu_name == DeferredKernel.name:
        cpu_name = "cpu"
    cpu_kernel = cpu_kernel or get_kernel(cpu_name)
    register_kernel(DeferredKernel.name, DeferredKernel)
    llm = load_llm(settings.model_copy(update={"torch_device": "cpu", "torch_kernels": DeferredKernel.name}))
    plan = place_llm(llm, settings, gpu_kernel=gpu_kernel, cpu_kernel=cpu_kernel)
    llm.placement = plan
    return llm


def replan_llm(llm: Any, settings: Any, recorder: ProfileRecorder, *, gpu_kernel: Any = None,
               cpu_kernel: Any = None) -> Placement:
    """Re-place a served model from the routing recorded while serving (merged with the saved profile, if any);
    the recorder goes on counting on the re-placed layers."""
    saved = getattr(settings, "routing_profile", None)
    profile = recorder.profile
    if saved is not None and Path(saved).exists():
        profile = RoutingProfile.load(saved).merge(profile)
    plan = place_llm(llm, settings, gpu_kernel=gpu_kernel, cpu_kernel=cpu_kernel, profile=profile)
    llm.placement = plan
    attach_recorder(llm.model, recorder)  # the layers are new: keep recording on them
    return plan
