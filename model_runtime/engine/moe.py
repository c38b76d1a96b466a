"""The hierarchical, heterogeneous MoE feed-forward layer.

A layer holds:
- a *shared group*: S experts of width Fs that every token uses with weight 1, optionally scaled by a sigmoid gate
  `sigmoid(x . g)` (qwen2moe's gated shared expert). A dense MLP is a shared group of one ungated expert.
- *routed groups*: groups of experts, each group with its own FFN width. One router scores all routed experts
  (concatenated in group order); top-k is taken over all of them with softmax or sigmoid gating and optional
  renormalisation of the k weights; the chosen experts are then split back per group.

Routing and expert compute are separate steps, so that experts can be computed elsewhere:

    routes = layer.route(x)                 # list, one (ids [T, K], weights [T, K]) per routed group;
                                            # ids are local to the group, -1 where the slot chose another group
    y = layer.shared_forward(x)             # shared group (or zeros)
    for g, (ids, w) in enumerate(routes):
        y += layer.group_forward(g, x, ids, w)   # one kernel call per group

`forward(x)` does exactly that. A placement (a per-expert device map) can override `group_forward` or split a
group's ids into the experts held on each device (ids of experts a kernel does not hold are passed as -1, which
every kernel skips) and add the partial results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from model_runtime.engine.kernels import ExpertKernel, ExpertWeights


@dataclass
class RouterSpec:
    top_k: int
    gating: str = "softmax"  # "softmax" | "sigmoid"
    normalize: bool = False  # renormalise the k chosen weights to sum 1
    scale: float = 1.0  # multiply the final weights


@dataclass
class MoELayer:
    kernel: ExpertKernel | None  # None: routing only (a placed layer's experts are prepared by its own kernels)
    shared: ExpertWeights | None = None
    shared_gate: torch.Tensor | None = None  # [D], sigmoid gate on the shared group's output
    router: torch.Tensor | None = None  # [E_total, D]
    routed: list[ExpertWeights] = field(default_factory=list)
    spec: RouterSpec | None = None

    def __post_init__(self):
        self.group_sizes = [g.n_experts for g in self.routed]
        self.group_widths = [g.width for g in self.routed]
        self.offsets = [sum(self.group_sizes[:i]) for i in range(len(self.group_sizes))]
        if self.router is not None and self.router.shape[0] != sum(self.group_sizes):
            raise ValueError(f"router has {self.router.shape[0]} rows for {sum(self.group_sizes)} routed experts")
        if self.kernel is None:
            self._shared_prepared, self._prepared = None, []
            self.shared, self.routed = _shape_only(self.shared), [_shape_only(g) for g in self.routed]
            return
        self._shared_prepared = self.kernel.prepare(self.shared) if self.shared is not None else None
        self._prepared = [self.kernel.prepare(g) for g in self.routed]
        if self.kernel.name == "reference":  # its prepared weights are the float32 ones (kept for with_kernel)
            self.shared, self.routed = self._shared_prepared, list(self._prepared)
        else:  # the float32 (or lazy, file-backed) sources are not needed once quantized
            self.shared = _shape_only(self.shared)
            self.routed = [_shape_only(g) for g in self.routed]

    @property
    def n_routed(self) -> int:
        return sum(self.group_sizes)

    def route(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per routed group: (ids [T, K] local to the group, -1 elsewhere; weights [T, K], 0 elsewhere)."""
        if not self.routed:
            return []
        spec = self.spec
        logits = x.float() @ self.router.T
        probs = torch.softmax(logits, -1) if spec.gating == "softmax" else torch.sigmoid(logits)
        w, ids = torch.topk(probs, spec.top_k, dim=-1)
        if spec.normalize:
            w = w / w.sum(-1, keepdim=True)
        if spec.scale != 1.0:
            w = w * spec.scale
        out = []
        for off, n in zip(self.offsets, self.group_sizes):
            inside = (ids >= off) & (ids < off + n)
            out.append((torch.where(inside, ids - off, torch.full_like(ids, -1)),
                        torch.where(inside, w, torch.zeros_like(w))))
        return out

    def shared_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._shared_prepared is None:
            return torch.zeros(x.shape, dtype=torch.float32)
        t, s = x.shape[0], self.shared.n_experts
        if s == 1:
            y = self.kernel.dense(self._shared_prepared, x)
        else:
            ids = torch.arange(s).expand(t, s)
            y = self.kernel.forward(self._shared_prepared, x, ids, torch.ones(t, s))
        if self.shared_gate is not None:
            y = y * torch.sigmoid(x.float() @ self.shared_gate)[:, None]
        return y

    def group_forward(self, g: int, x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.kernel.forward(self._prepared[g], x, ids, weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.shared_forward(x)
        for g, (ids, w) in enumerate(self.route(x)):
            if bool((ids >= 0).any()):
                y = y + self.group_forward(g, x, ids, w)
        return y

    __call__ = forward


def _shape_only(w) -> ExpertWeights | None:
    """Shapes only (meta tensors): what routing and placement need to know of a group."""
    if w is None:
        return None
    e, f, d = w.n_experts, w.width, w.dim
    meta = dict(device="meta")
    return ExpertWeights(torch.empty(e, f, d, **meta), torch.empty(e, f, d, **meta), torch.empty(e, d, f, **meta),
                         w.activation, w.widths)
