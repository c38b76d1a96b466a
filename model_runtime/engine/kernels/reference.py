"""`reference`: plain PyTorch float32, one matmul triple per expert. The ground truth the other kernels match."""

from __future__ import annotations

import torch

from model_runtime.engine.kernels.base import ExpertKernel, ExpertWeights, activation_fn, group_by_expert


class ReferenceKernel(ExpertKernel):
    name = "reference"
    device = "cpu"

    def prepare(self, w: ExpertWeights) -> ExpertWeights:
        w = w.materialize()
        return ExpertWeights(w.gate.float().contiguous(), w.up.float().contiguous(), w.down.float().contiguous(),
                             w.activation, w.widths)

    def forward(self, prepared: ExpertWeights, x, topk_ids, topk_weights):
        act = activation_fn(prepared.activation)
        out = torch.zeros_like(x, dtype=torch.float32)
        for e, tok, w in group_by_expert(topk_ids, topk_weights, prepared.n_experts):
            xe = x[tok].float()
            h = act(xe @ prepared.gate[e].T) * (xe @ prepared.up[e].T)
            out.index_add_(0, tok, (h @ prepared.down[e].T) * w[:, None].float())
        return out
