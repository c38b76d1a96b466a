"""The hybrid MoE layer: routed experts split expert by expert between a GPU-side and a CPU-side expert kernel.

``HybridExperts`` runs one routed group placed this way: the GPU work (the group's GPU-resident experts and the
shared expert) is submitted first, asynchronously; the CPU computes its experts meanwhile; the two are summed.
``PlacedMoELayer`` is a whole FFN layer built that way; ``place_model`` replaces a model's FFNs by placed ones.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import torch

from model_runtime.engine.placement_plan import Placement
from model_runtime.engine.routing_profile import layer_key


class ExpertSubset:
    """Some experts of a group (float32 `ExpertWeights` or lazy file-backed experts), read through `expert(e)`."""

    def __init__(self, w: Any, experts: Sequence[int]):
        self.w, self.idx = w, [int(e) for e in experts]
        self.n_experts, self.width, self.dim, self.activation = len(self.idx), w.width, w.dim, w.activation
        widths = getattr(w, "widths", None)
        self.widths = [int(widths[i]) for i in self.idx] if widths is not None else None

    def expert(self, e: int):
        return self.w.expert(self.idx[e])

    def materialize(self):
        from model_runtime.engine.kernels import ExpertWeights

        if isinstance(getattr(self.w, "gate", None), torch.Tensor):
            index = torch.tensor(self.idx, dtype=torch.long, device=self.w.gate.device)
            return ExpertWeights(self.w.gate.index_select(0, index), self.w.up.index_select(0, index),
                                 self.w.down.index_select(0, index), self.activation, self.widths)
        parts = [self.expert(e) for e in range(self.n_experts)]
        return ExpertWeights(*(torch.stack([p[j] for p in parts]) for j in range(3)), self.activation, self.widths)


def subset_expert_weights(w: Any, experts: Sequence[int]) -> Any:
    """The given experts of a group (per-expert lists of tensors kept as lists; else an `ExpertSubset`)."""
    if isinstance(getattr(w, "gate", None), list):
        idx = list(experts)
        return type(w)(gate=[w.gate[i] for i in idx], up=[w.up[i] for i in idx], down=[w.down[i] for i in idx],
                       activation=w.activation)
    return ExpertSubset(w, experts)


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
    return len(w.gate) if isinstance(getattr(w, "gate", None), list) else int(w.n_experts)


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
    from model_runtime.engine.moe import _shape_only

    light = copy.copy(layer)
    light.routed = [_shape_only(w) for w in layer.routed]
    light.shared = _shape_only(layer.shared)
    light._prepared = []
    light._shared_prepared = None
    return light


def _float_weights(layer: Any) -> bool:
    """Whether the layer still holds readable expert weights (float32, or lazy file-backed), not shapes only."""
    ws = [*(layer.routed or []), *([layer.shared] if layer.shared is not None else [])]
    return all(not isinstance(getattr(w, "gate", None), torch.Tensor) or w.gate.device.type != "meta" for w in ws)


def place_model(model: Any, placement: Placement, gpu_kernel: Any, cpu_kernel: Any, *,
                weights_for_layer: Callable[[int], Any] | None = None, keep_weights: bool = False) -> Any:
    """Replace every FFN layer of an engine ``Transformer`` by a ``PlacedMoELayer`` following ``placement``.

    Routed experts go where the placement says (layers it does not name: all on the CPU); shared experts and dense
    FFNs go to the GPU kernel. The kernels quantize from float32 weights: either the model still holds them (loaded
    with the ``reference`` kernel), or ``weights_for_layer(i)`` returns layer ``i``'s ``loader.FFNSources`` (read
    from the GGUF file one expert at a time).
    """
    for i, blk in enumerate(model.blocks):
        layer = blk.ffn.layer if isinstance(blk.ffn, PlacedMoELayer) else blk.ffn
        if not getattr(layer, "routed", None) and getattr(layer, "shared", None) is None:
            continue
        source = layer if _float_weights(layer) else (weights_for_layer(i) if weights_for_layer else None)
        if source is not None and not hasattr(source, "n_routed"):  # FFNSources: a routing-only layer over them
            source = _sources_layer(source)
        if source is None or not _float_weights(source):
            raise ValueError(f"layer {i} no longer holds float weights: load the model with the reference kernel "
                             "or pass weights_for_layer")
        devices = placement.devices.get(layer_key(i))
        if devices is None:
            devices = ["cpu"] * source.n_routed
        blk.ffn = PlacedMoELayer(source, source.routed, source.shared, devices, gpu_kernel, cpu_kernel,
                                 keep_weights=keep_weights)
    return model


def _sources_layer(src: Any) -> Any:
    """A routing-only ``MoELayer`` whose ``routed``/``shared`` are the lazy sources themselves (read when placed)."""
    from model_runtime.engine.moe import MoELayer

    layer = MoELayer(None, shared=src.shared, shared_gate=src.shared_gate, router=src.router, routed=src.routed,
                     spec=src.spec)
    layer.routed, layer.shared = list(src.routed), src.shared
    return layer
