"""Step 1, `tune profile`: the dense parent's FFN activations on calibration text.

Per layer and token: the FFN input x [D] (after ffn_norm) and the input of down_proj h = act(gate x) * up x [F],
stored as float16 for `n_tokens` calibration tokens and `n_heldout` held-out tokens (other wiki pages).
Output: one torch file (`profile.pt`) that `moefy` reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tune.data import Tokens, wiki_sequences
from tune.errors import TuneError
from tune.model import TuneModel, load_dense
from tune.parent import sha256_file


@dataclass
class Activations:
    """Per layer: x [N, D] and h [N, F] (float16); `tokens`: the sequences they came from."""

    x: list[torch.Tensor]
    h: list[torch.Tensor]
    tokens: list[list[int]]


def collect(model: TuneModel, seqs: list[list[int]], progress=None) -> Activations:
    n = sum(len(s) for s in seqs)
    cfg = model.cfg
    xs = [torch.empty(n, cfg.d_model, dtype=torch.float16) for _ in model.blocks]
    hs = [torch.empty(n, cfg.ffn_width, dtype=torch.float16) for _ in model.blocks]
    at = 0

    def hook(i):
        def f(x, h):
            xs[i][at:at + x.shape[0]] = x.half()
            hs[i][at:at + h.shape[0]] = h.half()
        return f

    for i, ffn in enumerate(model.ffns):
        ffn.capture = hook(i)
    try:
        with torch.no_grad():
            for s in seqs:
                model.hidden_states(s)
                at += len(s)
                if progress:
                    progress(len(s))
    finally:
        for ffn in model.ffns:
            ffn.capture = None
    return Activations(xs, hs, seqs)


def run_profile(parent: Path, data_dir: Path, out: Path, n_tokens: int = 4096, n_heldout: int = 1024,
                seq_len: int = 256, max_layers: int | None = None, progress=None) -> dict:
    """Profile `parent` and write `out` (profile.pt). Returns a summary (tokens, seconds)."""
    started = time.perf_counter()
    model = load_dense(parent, max_layers)
    tok = Tokens(parent)
    calib = wiki_sequences(tok, data_dir, "calib", n_tokens, seq_len)
    held = wiki_sequences(tok, data_dir, "heldout", n_heldout, seq_len)
    if not calib or not held:
        raise TuneError(f"not enough wiki text in {data_dir} for {n_tokens} + {n_heldout} tokens; lower --tokens")
    a, b = collect(model, calib, progress), collect(model, held, progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    torch.save({"parent": str(parent), "parent_sha256": sha256_file(parent), "n_layer": model.cfg.n_layer,
                "calib": a.__dict__, "heldout": b.__dict__}, tmp)
    tmp.replace(out)
    return {"calib_tokens": sum(map(len, calib)), "heldout_tokens": sum(map(len, held)),
            "seconds": round(time.perf_counter() - started, 1)}


def load_profile(path: Path) -> dict:
    if not path.exists():
        raise TuneError(f"no profile at {path}; run `moesearch tune profile` first")
    try:
        return torch.load(path, weights_only=False)
    except Exception as e:  # a truncated or foreign file
        raise TuneError(f"profile {path} cannot be read ({e}); run `moesearch tune profile` again") from e
