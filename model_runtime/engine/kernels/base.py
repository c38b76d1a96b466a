"""The expert-kernel interface: how a group of same-width FFN experts is computed for a batch of routed tokens.

Model code never computes an FFN itself: it builds `ExpertWeights` once at load, asks a kernel to `prepare` them
(quantize, pack, move to a device) and calls `forward` with the tokens and their routing. A dense MLP is a group of
one expert to which every token is routed with weight 1, so dense models use the same kernels.

Kernels register themselves by name (`register_kernel`); `get_kernel(name)` builds one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from model_runtime.errors import InvalidSettingsError


@dataclass
class ExpertWeights:
    """One group of experts sharing one FFN width, float32 in memory.

    `widths[e]` (optional) is expert e's own width when the group stores narrower experts zero-padded to `F`."""

    gate: torch.Tensor  # [E, F, D]
    up: torch.Tensor  # [E, F, D]
    down: torch.Tensor  # [E, D, F]
    activation: str = "silu"  # "silu" | "gelu_tanh"
    widths: list[int] | None = None

    @property
    def n_experts(self) -> int:
        return self.gate.shape[0]

    @property
    def width(self) -> int:
        return self.gate.shape[1]

    @property
    def dim(self) -> int:
        return self.gate.shape[2]

    def expert(self, e: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Expert e's (gate [F, D], up [F, D], down [D, F])."""
        return self.gate[e], self.up[e], self.down[e]

    def materialize(self) -> "ExpertWeights":
        return self

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.gate, self.up, self.down))


class LinearKernel(ABC):
    """How a plain linear layer y = x W^T runs (attention projections, the output head): W [N, D] prepared once."""

    name: str = "?"
    device: str = "cpu"

    @abstractmethod
    def prepare(self, w: torch.Tensor) -> Any:
        """Quantize/pack/move W [N, D] once, at load."""

    def prepare_chunks(self, chunks: Iterable[torch.Tensor], shape: tuple[int, int]) -> Any:
        """W [N, D] = `shape` given as consecutive row chunks (so that a large W is never whole in float32);
        default: joined."""
        return self.prepare(torch.cat(list(chunks), 0))

    @abstractmethod
    def __call__(self, prepared: Any, x: torch.Tensor) -> torch.Tensor:
        """x [T, D] -> float32 [T, N]."""


class FloatLinear(LinearKernel):
    """Plain matmul in `dtype` on `device` (the reference's float32, or a GPU's)."""

    name = "float"

    def __init__(self, device: str = "cpu", dtype: torch.dtype = torch.float32):
        self.device, self.dtype = str(device), dtype

    def prepare(self, w: torch.Tensor) -> torch.Tensor:
        return w.to(self.device, self.dtype).contiguous()

    def __call__(self, prepared: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (x.to(prepared.dtype) @ prepared.T).float()


def activation_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name == "silu":
        return F.silu
    if name == "gelu_tanh":
        return lambda t: F.gelu(t, approximate="tanh")
    raise ValueError(f"unknown activation {name!r}; supported: silu, gelu_tanh")


def group_by_expert(topk_ids: torch.Tensor, topk_weights: torch.Tensor, n_experts: int):
    """Sort (token, slot) pairs by expert: yields (expert, token_idx, weights) for each expert that has tokens.

    Ids outside [0, n_experts) (e.g. -1, or experts this kernel does not hold) are skipped.
    """
    flat_ids = topk_ids.reshape(-1)
    valid = (flat_ids >= 0) & (flat_ids < n_experts)
    k = topk_ids.shape[1]
    pos = torch.nonzero(valid, as_tuple=True)[0]
    if pos.numel() == 0:
        return
    ids = flat_ids[pos]
    order = torch.argsort(ids, stable=True)
    pos, ids = pos[order], ids[order]
    counts = torch.bincount(ids, minlength=n_experts).tolist()
    tok = pos // k
    w = topk_weights.reshape(-1)[pos]
    start = 0
    for e, c in enumerate(counts):
        if c:
            yield e, tok[start:start + c], w[start:start + c]
            start += c


class ExpertKernel(ABC):
    name: str = "?"
    device: str = "cpu"  # "cpu" | "cuda"

    @abstractmethod
    def prepare(self, w: ExpertWeights) -> Any:
        """Quantize/pack/move the group's weights once, at load. `w` may be lazy (experts read from the file one
        at a time through `w.expert(e)`): a kernel should not hold more than one expert in float32 at once."""

    @abstractmethod
    def forward(self, prepared: Any, x: torch.Tensor, topk_ids: torch.Tensor,
                topk_weights: torch.Tensor) -> torch.Tensor:
        """x [T, D]; topk_ids [T, K] int64 expert ids within this group (-1 = no expert); topk_weights [T, K].
        Returns [T, D] = sum_k topk_weights[t,k] * down_e(act(gate_e x_t) * up_e x_t) for e = topk_ids[t,k]."""

    def dense(self, prepared: Any, x: torch.Tensor) -> torch.Tensor:
        """Every token through expert 0 with weight 1 (a dense MLP stored as a one-expert group)."""
        t = x.shape[0]
        return self.forward(prepared, x, torch.zeros(t, 1, dtype=torch.long, device=x.device),
                            torch.ones(t, 1, dtype=x.dtype, device=x.device))

    @property
    def linear(self) -> LinearKernel:
        """The kernel of this device's plain linear layers (attention, output head); float32 by default."""
        return FloatLinear(self.device)


_REGISTRY: dict[str, Callable[[], ExpertKernel]] = {}


def register_kernel(name: str, factory: Callable[[], ExpertKernel]) -> None:
    _REGISTRY[name] = factory


def available_kernels() -> list[str]:
    return sorted(_REGISTRY)


class UnknownKernelError(InvalidSettingsError):
    pass


def get_kernel(name: str) -> ExpertKernel:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UnknownKernelError(
            f"unknown expert kernel {name!r}; available: {', '.join(available_kernels())} "
            "(set MOESEARCH_TORCH_KERNELS or --kernels)") from None
    return factory()
