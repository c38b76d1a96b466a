"""Step 5, `tune eval`: how much of the dense parent a MoE keeps, and how fast our engine decodes each.

- Quality on held-out wiki text (pages never used for calibration): perplexity of parent and MoE, next-token
  agreement (same argmax as the parent), and the mean relative error of each FFN's output (from `moefy`).
- Speed: decode tokens/s of a GGUF in our torch engine (greedy, after a short prompt), parent and MoE in the
  same process, one after the other.
- QA: the command line that runs the agent's evaluation on the built GGUF (`qa_command`).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from tune.model import TuneModel


@torch.no_grad()
def sequence_stats(model: TuneModel, seqs: list[list[int]], **ffn_kw) -> tuple[list[torch.Tensor], float]:
    """Per sequence: argmax next tokens [T-1]; and the mean next-token cross-entropy (nats) over all."""
    preds, nll, n = [], 0.0, 0
    for s in seqs:
        ids = torch.tensor(s)
        logits = model(ids, logits_at=torch.arange(len(s) - 1), **ffn_kw)
        preds.append(logits.argmax(-1))
        nll += float(torch.nn.functional.cross_entropy(logits, ids[1:], reduction="sum"))
        n += len(s) - 1
    return preds, nll / max(1, n)


def compare(parent_preds: list[torch.Tensor], parent_nll: float, preds: list[torch.Tensor], nll: float) -> dict:
    agree = torch.cat([(a == b).float() for a, b in zip(parent_preds, preds)]).mean()
    return {"ppl_parent": round(float(torch.exp(torch.tensor(parent_nll))), 3),
            "ppl": round(float(torch.exp(torch.tensor(nll))), 3), "next_token_agreement": round(float(agree), 4)}


@contextlib.contextmanager
def moe_swapped(model: TuneModel, perms, routers, shape):
    """The dense `model` with MoE FFNs for the duration of the block (the dense FFNs restored after)."""
    from tune.moefy import apply_moe

    dense = [b.ffn for b in model.blocks]
    apply_moe(model, perms, routers, shape)
    try:
        yield model
    finally:
        for b, f in zip(model.blocks, dense):
            b.ffn = f


def active_ffn_params(d_model: int, active_neurons: float, n_experts: int) -> float:
    """Per layer: 3 weights (gate, up, down) per active neuron x d_model, plus the router [E, D]."""
    return 3 * d_model * active_neurons + n_experts * d_model


def decode_speed(gguf: str | Path, n_tokens: int = 32, prompt: str = "The history of the city begins",
                 kernels: str = "cpu", threads: int | None = None) -> dict:
    """Greedy decode tokens/s of `gguf` in our engine: time(n_tokens + 1) - time(1) over n_tokens."""
    from model_runtime.engine import load_torch_llm
    from model_runtime.settings import ModelSettings

    settings = ModelSettings(model=str(gguf), backend="torch", torch_kernels=kernels, n_threads=threads, n_ctx=512)
    llm = load_torch_llm(gguf, settings)
    try:
        llm.generate(prompt, max_tokens=2)  # warm-up
        t = time.perf_counter()
        llm.generate(prompt, max_tokens=1)
        one = time.perf_counter() - t
        t = time.perf_counter()
        c = llm.generate(prompt, max_tokens=n_tokens + 1)
        full = time.perf_counter() - t
        made = max(1, c.completion_tokens - 1)
        return {"decode_tok_s": round(made / max(1e-9, full - one), 2), "tokens": made, "text": c.text[:80]}
    finally:
        llm.close()


def qa_command(gguf: str | Path, limit: int = 300) -> str:
    """The agent's QA evaluation on the built model (backend torch), as the eval package runs it."""
    return f"MOESEARCH_BACKEND=torch moesearch eval run --model {gguf} --mode quick --limit {limit}"
