"""Step 3, `tune train`: routers + LoRA (attention and experts) on search tasks, from a moefied recipe.

Loss: cross-entropy on the answer tokens only (+ EOS), plus `balance` x the Switch load-balancing term averaged
over layers. One example a step (sequences differ in length; CPU-friendly), AdamW, a fixed seed, a progress bar
with the loss and tokens/s, and a checkpoint every `save_every` steps (atomic): run the same command again to
resume where it stopped.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from tune.data import Example, Tokens
from tune.errors import TuneError
from tune.model import LoRA, TuneModel, load_dense
from tune.moefy import apply_moe
from tune.recipe import Recipe

ATTN_TARGETS = ("q", "k", "v", "o")
FFN_TARGETS = ("gate", "up", "down")


@dataclass
class TrainConfig:
    steps: int = 200
    lr: float = 2e-4
    router_lr: float = 1e-3
    rank: int = 8
    alpha: float = 16.0
    balance: float = 0.01
    max_len: int = 768
    save_every: int = 25
    seed: int = 0


def add_lora(model: TuneModel, rank: int, alpha: float, seed: int) -> None:
    """LoRA on q/k/v/o and on the (permuted) FFN gate/up/down of every block; routers trainable."""
    gen = torch.Generator().manual_seed(seed)
    for blk in model.blocks:
        w = blk.w
        for t, n in zip(ATTN_TARGETS, ("attn_q", "attn_k", "attn_v", "attn_output")):
            blk.lora[t] = LoRA(w[n].shape[0], w[n].shape[1], rank, alpha, gen)
        f = blk.ffn
        for t in FFN_TARGETS:
            weight = getattr(f, t)
            f.lora[t] = LoRA(weight.shape[0], weight.shape[1], rank, alpha, gen)
        if f.router is not None:
            f.router.requires_grad_(True)


def model_from_recipe(parent: Path, recipe: Recipe) -> TuneModel:
    """The parent with the recipe's MoE layers (routers, neuron order) and, if it has them, its LoRA adapters."""
    model = load_dense(parent, recipe.n_layer)
    apply_moe(model, recipe.perms, [torch.from_numpy(r) for r in recipe.routers], recipe.shape)
    if recipe.lora:
        add_lora(model, recipe.lora_rank, recipe.lora_alpha, 0)
        load_lora(model, recipe.lora)
        model.requires_grad_(False)
    return model


def lora_arrays(model: TuneModel) -> dict[str, np.ndarray]:
    out = {}
    for i, blk in enumerate(model.blocks):
        for t, m in list(blk.lora.items()) + list(blk.ffn.lora.items()):
            out[f"{i}.{t}.A"] = m.A.detach().numpy().copy()
            out[f"{i}.{t}.B"] = m.B.detach().numpy().copy()
    return out


def load_lora(model: TuneModel, arrays: dict[str, np.ndarray]) -> None:
    """Set the adapters from recipe arrays; an adapter the arrays lack is removed (its weight stays as is)."""
    for i, blk in enumerate(model.blocks):
        for holder in (blk.lora, blk.ffn.lora):
            for t in list(holder.keys()):
                if f"{i}.{t}.A" not in arrays:
                    del holder[t]
                    continue
                holder[t].A.data.copy_(torch.from_numpy(arrays[f"{i}.{t}.A"].astype(np.float32)))
                holder[t].B.data.copy_(torch.from_numpy(arrays[f"{i}.{t}.B"].astype(np.float32)))


def encode_example(tok: Tokens, ex: Example, eos: int | None) -> tuple[list[int], int]:
    """Token ids and the index of the first answer token."""
    prompt = tok.bos() + tok.encode(ex.prompt)
    answer = tok.encode(ex.answer) + ([eos] if eos is not None and eos >= 0 else [])
    return prompt + answer, len(prompt)


def example_loss(model: TuneModel, ids: list[int], start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy on the answer tokens, mean load-balancing term over layers)."""
    ids_t = torch.tensor(ids)
    at = torch.arange(start - 1, len(ids) - 1)
    logits = model(ids_t, logits_at=at)
    ce = torch.nn.functional.cross_entropy(logits, ids_t[start:])
    bal = [f.last_balance for f in model.ffns if f.last_balance is not None]
    return ce, torch.stack(bal).mean() if bal else torch.zeros(())


def trainable(model: TuneModel) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


class Checkpoint:
    """`dir/ckpt.pt`: step, trainable tensors, optimizer, RNG, config, recipe sha; written atomically."""

    def __init__(self, directory: Path, run_key: dict):
        self.path = directory / "ckpt.pt"
        self.key = run_key

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, weights_only=False)
        except Exception as e:
            raise TuneError(f"checkpoint {self.path} is damaged ({e}); delete it or run `tune train --restart`") from e
        if state.get("key") != self.key:
            raise TuneError(f"{self.path} belongs to a run with other options or another recipe; pass the same "
                            "options to resume it, or --restart to start over")
        return state

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".partial")
        torch.save({**state, "key": self.key}, tmp)
        tmp.replace(self.path)


def train(model: TuneModel, tok: Tokens, examples: list[Example], cfg: TrainConfig, ckpt: Checkpoint,
          eos: int | None = None, bar: bool = True, on_step=None) -> dict:
    """Run (or resume) training up to `cfg.steps`; returns {steps, losses (per step), tokens, seconds, done}.
    `on_step(step, loss)` is called after each step (an exception there stops the run like Ctrl-C does)."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    add_lora(model, cfg.rank, cfg.alpha, cfg.seed)
    params = trainable(model)
    routers = [p for n, p in params.items() if n.endswith("router")]
    others = [p for n, p in params.items() if not n.endswith("router")]
    opt = torch.optim.AdamW([{"params": others, "lr": cfg.lr}, {"params": routers, "lr": cfg.router_lr}],
                            weight_decay=0.0)
    encoded = [e for e in (encode_example(tok, ex, eos) for ex in examples) if len(e[0]) <= cfg.max_len]
    if not encoded:
        raise TuneError(f"no training example fits in --max-len {cfg.max_len} tokens; raise it")
    order = list(range(len(encoded)))
    random.Random(cfg.seed).shuffle(order)
    state = ckpt.load() or {"step": 0, "losses": [], "tokens": 0, "seconds": 0.0}
    if state["step"]:
        for n, p in params.items():
            p.data.copy_(state["params"][n])
        opt.load_state_dict(state["opt"])
    progress = tqdm(total=cfg.steps, initial=state["step"], desc="train", disable=not bar, dynamic_ncols=True)
    t0, tok0 = time.perf_counter(), state["tokens"]
    ema = None
    while state["step"] < cfg.steps:
        ids, start = encoded[order[state["step"] % len(order)]]
        ce, bal = example_loss(model, ids, start)
        loss = ce + cfg.balance * bal
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        state["step"] += 1
        value = float(ce.detach())
        state["losses"].append(value)
        state["tokens"] += len(ids)
        ema = value if ema is None else 0.9 * ema + 0.1 * value
        rate = (state["tokens"] - tok0) / max(1e-9, time.perf_counter() - t0)
        progress.update(1)
        progress.set_postfix(loss=f"{ema:.3f}", tok_s=f"{rate:.0f}")
        if state["step"] % cfg.save_every == 0 or state["step"] == cfg.steps:
            state["seconds"] += time.perf_counter() - t0
            t0, tok0 = time.perf_counter(), state["tokens"]
            ckpt.save({**state, "params": {n: p.detach().clone() for n, p in params.items()},
                       "opt": opt.state_dict(), "done": state["step"] >= cfg.steps, "target": cfg.steps})
        if on_step is not None:
            on_step(state["step"], value)
    progress.close()
    return {"steps": state["step"], "losses": state["losses"], "tokens": state["tokens"],
            "seconds": round(state["seconds"], 1), "done": True}


def trained_recipe(model: TuneModel, recipe: Recipe, cfg: TrainConfig, summary: dict) -> Recipe:
    """The recipe with the trained routers and LoRA adapters."""
    import dataclasses

    routers = [f.router.detach().numpy().copy() for f in model.ffns]
    losses = summary.get("losses", [])
    first, last = losses[:10], losses[-10:]
    info = {**recipe.info, "train": {**asdict(cfg), "steps_done": summary["steps"], "tokens": summary["tokens"],
                                     "loss_first10": float(np.mean(first)) if first else math.nan,
                                     "loss_last10": float(np.mean(last)) if last else math.nan}}
    info.pop("gguf_sha256", None)
    return dataclasses.replace(recipe, routers=routers, lora=lora_arrays(model), lora_rank=cfg.rank,
                               lora_alpha=cfg.alpha, info=json.loads(json.dumps(info)))
