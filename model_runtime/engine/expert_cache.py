"""A dynamic GPU expert cache (LRU or LFU within a byte budget) and its comparison with static placement, on
routing traces.

Static placement (``placement_plan``) fixes the GPU experts from a routing profile; a dynamic cache instead keeps
the most recently (LRU) or most often (LFU) used experts, loading a missed expert from its CPU copy while the CPU
computes it (so a miss costs CPU time once and PCIe bytes, never a stall). Which is better depends on how much
routing is reused over short spans, which a trace shows: ``TraceRecorder`` records, token by token, the experts each
MoE layer chose; ``simulate_static`` and ``simulate_cache`` replay a trace and count GPU hits and bytes moved.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Literal, Mapping, Sequence

import torch

Policy = Literal["lru", "lfu"]
# one token: for each layer key, the experts it chose
Trace = list[dict[str, list[int]]]


class TraceRecorder:
    """Routing trace of a model run: attach with ``routing_profile.attach_recorder(model, recorder)`` (it calls
    ``record(layer, topk_ids [T, K], n_experts)`` per layer and call). Tokens are in the order they were run."""

    def __init__(self) -> None:
        self.trace: Trace = []
        self._start: dict[str, int] = {}

    def record(self, layer: str, topk_ids: torch.Tensor, num_experts: int) -> None:
        ids = topk_ids.detach().to("cpu").tolist()
        start = self._start.get(layer, 0)  # this layer's next token: layers are called in order, token batches too
        for t, row in enumerate(ids):
            while len(self.trace) <= start + t:
                self.trace.append({})
            self.trace[start + t][layer] = [e for e in row if 0 <= e < num_experts]
        self._start[layer] = start + len(ids)


@dataclass
class CacheStats:
    tokens: int = 0
    activations: int = 0  # (token, layer, expert) choices
    hits: int = 0  # of them, served by an expert on the GPU
    bytes_moved: int = 0  # CPU -> GPU copies

    @property
    def hit_rate(self) -> float:
        return self.hits / self.activations if self.activations else 0.0

    @property
    def bytes_per_token(self) -> float:
        return self.bytes_moved / self.tokens if self.tokens else 0.0


@dataclass
class ExpertCache:
    """GPU-resident experts within ``budget`` bytes; ``sizes[layer][expert]`` bytes each. ``access`` returns
    whether the expert was resident; on a miss it is loaded (evicting by ``policy``) unless it alone exceeds the
    budget. LFU counts every access since the start (ties: least recent first)."""

    budget: int
    sizes: Mapping[str, Sequence[int]]
    policy: Policy = "lru"
    used: int = 0
    resident: OrderedDict = field(default_factory=OrderedDict)  # (layer, expert) -> None, least recent first
    counts: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy not in ("lru", "lfu"):
            raise ValueError(f"unknown cache policy {self.policy!r}; use lru or lfu")

    def preload(self, experts: Iterable[tuple[str, int]]) -> None:
        for key in experts:
            self._insert(key)

    def access(self, layer: str, expert: int) -> tuple[bool, int]:
        """(hit, bytes moved to the GPU by this access)."""
        key = (layer, expert)
        self.counts[key] = self.counts.get(key, 0) + 1
        if key in self.resident:
            self.resident.move_to_end(key)
            return True, 0
        return False, self._insert(key)

    def _insert(self, key: tuple[str, int]) -> int:
        size = int(self.sizes[key[0]][key[1]])
        if size > self.budget or key in self.resident:
            return 0
        while self.used + size > self.budget:
            self._evict()
        self.resident[key] = None
        self.used += size
        return size

    def _evict(self) -> None:
        if self.policy == "lru":
            victim = next(iter(self.resident))
        else:  # least frequently used; among equals the least recent (OrderedDict order)
            victim = min(self.resident, key=lambda k: self.counts.get(k, 0))
        del self.resident[victim]
        self.used -= int(self.sizes[victim[0]][victim[1]])


def simulate_static(trace: Trace, gpu_experts: Mapping[str, Iterable[int]]) -> CacheStats:
    """Replay ``trace`` against a fixed set of GPU experts per layer (a ``Placement``'s ``gpu_experts``)."""
    on_gpu = {k: set(v) for k, v in gpu_experts.items()}
    st = CacheStats()
    for token in trace:
        st.tokens += 1
        for layer, experts in token.items():
            st.activations += len(experts)
            st.hits += sum(e in on_gpu.get(layer, ()) for e in experts)
    return st


def simulate_cache(trace: Trace, cache: ExpertCache) -> CacheStats:
    """Replay ``trace`` through a dynamic cache (its state carries over between calls)."""
    st = CacheStats()
    for token in trace:
        st.tokens += 1
        for layer, experts in token.items():
            for e in experts:
                hit, moved = cache.access(layer, e)
                st.activations += 1
                st.hits += hit
                st.bytes_moved += moved
    return st
