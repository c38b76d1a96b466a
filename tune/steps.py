"""The steps behind `moesearch tune moefy | train | export | eval`: files in the work folder in, files out."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from tune.errors import TuneError
from tune.evaluate import active_ffn_params, compare, decode_speed, moe_swapped, qa_command, sequence_stats
from tune.model import TuneModel, load_dense
from tune.moefy import MoEShape, moefy_model
from tune.parent import sha256_file
from tune.profile import load_profile
from tune.recipe import Recipe, load_recipe, save_recipe


def _profile_for(path: Path, work: Path) -> dict:
    prof = load_profile(work / "profile.pt")
    if prof["parent_sha256"] != sha256_file(path):
        raise TuneError(f"{work / 'profile.pt'} was made from another parent; run `moesearch tune profile` again")
    return prof


def moefy_row(model: TuneModel, prof: dict, shape: MoEShape, steps: int, parent_stats, seqs) -> tuple[dict, list]:
    """Moefy every layer for `shape` and measure it: one row of the curve, and the layer results."""
    started = time.perf_counter()
    results = moefy_model(prof, [b.ffn.down for b in model.blocks], shape, steps)
    perms, routers = [r.perm for r in results], [r.router for r in results]
    with moe_swapped(model, perms, routers, shape):
        preds, nll = sequence_stats(model, seqs)
    cfg = model.cfg
    active = float(np.mean([r.active_neurons for r in results]))
    row = {"shape": shape.label(), "active_neurons": round(active, 1),
           "active_ffn_frac": round(active / cfg.ffn_width, 4),
           "active_ffn_params_per_layer": int(active_ffn_params(cfg.d_model, active, shape.n_experts)),
           "dense_ffn_params_per_layer": 3 * cfg.d_model * cfg.ffn_width,
           "ffn_rel_error": round(float(np.mean([r.heldout_error for r in results])), 4),
           "ffn_rel_error_oracle_routing": round(float(np.mean([r.oracle_error for r in results])), 4),
           "ffn_rel_error_per_layer": [round(r.heldout_error, 3) for r in results],
           **compare(*parent_stats, preds, nll), "seconds": round(time.perf_counter() - started, 1)}
    return row, results


def write_curve(work: Path, rows: list[dict]) -> None:
    path = work / "curve.json"
    old = json.loads(path.read_text()) if path.exists() else []
    merged = {r["shape"]: r for r in old + rows}
    rows = sorted(merged.values(), key=lambda r: r["active_ffn_frac"])
    path.write_text(json.dumps(rows, indent=1))
    lines = ["| shape | active FFN neurons (frac) | FFN rel. error (oracle routing) | next-token agreement | "
             "ppl (parent) |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['shape']} | {r['active_neurons']:.0f} ({r['active_ffn_frac']:.1%}) | {r['ffn_rel_error']:.3f} "
              f"({r['ffn_rel_error_oracle_routing']:.3f}) | {r['next_token_agreement']:.3f} | {r['ppl']:.2f} "
              f"({r['ppl_parent']:.2f}) |" for r in rows]
    (work / "curve.md").write_text("\n".join(lines) + "\n")


def moefy_step(path: Path, work: Path, shape_spec: str, curve_specs: list[str], steps: int, e2e_seqs: int,
               parse) -> list[dict]:
    """Measure every shape of the curve and `shape_spec` (last); save moefied.npz for `shape_spec`."""
    prof = _profile_for(path, work)
    model = load_dense(path, prof["n_layer"])
    seqs = prof["heldout"]["tokens"][:e2e_seqs]
    parent_stats = sequence_stats(model, seqs)
    rows = []
    for spec in [s for s in curve_specs if s != shape_spec] + [shape_spec]:
        shape = parse(spec, model.cfg.ffn_width)
        row, results = moefy_row(model, prof, shape, steps, parent_stats, seqs)
        rows.append({"spec": spec, **row})
        write_curve(work, rows)
    recipe = Recipe(path.stem, prof["parent_sha256"], model.cfg.arch, model.cfg.n_layer, model.cfg.ffn_width, shape,
                    [r.perm for r in results], [r.router.numpy() for r in results], info={"moefy": rows[-1]})
    save_recipe(recipe, work / "moefied.npz")
    return rows


def _dev_loss(model, tok, examples, eos, max_len) -> float:
    from tune.train import encode_example, example_loss

    losses = []
    with torch.no_grad():
        for ex in examples:
            ids, start = encode_example(tok, ex, eos)
            if len(ids) <= max_len:
                losses.append(float(example_loss(model, ids, start)[0]))
    return round(float(np.mean(losses)), 4) if losses else float("nan")


def train_step(path: Path, work: Path, data: Path, cfg, limit: int | None, restart: bool, dev: int = 8,
               bar: bool = True, on_step=None, unanswerable_share: float | None = None) -> dict:
    """Train from moefied.npz; writes train/ckpt.pt (resumable) and trained.npz."""
    from tune.data import Tokens, search_examples
    from tune.train import Checkpoint, model_from_recipe, train, trained_recipe

    recipe_path = work / "moefied.npz"
    recipe = load_recipe(recipe_path)
    model = model_from_recipe(path, recipe)
    tok = Tokens(path)
    eos = tok._llm.token_eos()
    train_ex = search_examples(data, "train", cfg.seed, limit, unanswerable_share)
    dev_ex = search_examples(data, "dev", cfg.seed, dev)
    key = {k: v for k, v in asdict(cfg).items() if k not in ("steps", "save_every")}  # more steps: same run
    ckpt = Checkpoint(work / "train", {"cfg": key, "recipe": sha256_file(recipe_path), "examples": limit,
                                       "unanswerable_share": unanswerable_share})
    if restart and ckpt.path.exists():
        ckpt.path.unlink()
    before = _dev_loss(model, tok, dev_ex, eos, cfg.max_len)
    summary = train(model, tok, train_ex, cfg, ckpt, eos, bar, on_step)
    after = _dev_loss(model, tok, dev_ex, eos, cfg.max_len)
    trained = trained_recipe(model, recipe, cfg, summary)
    trained.info["train"].update(dev_loss_before=before, dev_loss_after=after)
    save_recipe(trained, work / "trained.npz")
    losses = summary["losses"]
    return {"steps": summary["steps"], "examples": len(train_ex), "loss_first10": trained.info["train"]["loss_first10"],
            "loss_last10": trained.info["train"]["loss_last10"], "dev_loss_before": before, "dev_loss_after": after,
            "tokens": summary["tokens"], "seconds": summary["seconds"],
            "tok_s": round(summary["tokens"] / max(1e-9, summary["seconds"]), 1) if losses else 0.0,
            "recipe": str(work / "trained.npz")}


def export_step(path: Path, work: Path, untrained: bool, out: Path | None) -> dict:
    """The shipped recipe (moefied or trained) and its GGUF, built and sha256-recorded."""
    from tune.build import build_gguf, check_hmoe

    if untrained:
        recipe = load_recipe(work / "moefied.npz")
    else:
        ckpt = work / "train" / "ckpt.pt"
        if ckpt.exists():
            state = torch.load(ckpt, weights_only=False)
            if not state.get("done"):
                raise TuneError(f"training stopped at step {state['step']} of {state.get('target')}; run "
                                "`moesearch tune train` again to resume it (or export --untrained)")
        if not (work / "trained.npz").exists():
            raise TuneError(f"no trained recipe in {work}; run `moesearch tune train` first (or export --untrained)")
        recipe = load_recipe(work / "trained.npz")
    out = out or work / "searchmoe.npz"
    gguf = out.with_suffix(".gguf")
    built = build_gguf(recipe, path, gguf)
    check_hmoe(gguf)
    recipe.info["gguf_sha256"] = built["sha256"]
    save_recipe(recipe, out)
    return {"recipe": str(out), "recipe_bytes": out.stat().st_size, **{f"gguf_{k}": v for k, v in built.items()}}


def _ffn_errors(model: TuneModel, prof: dict) -> tuple[list[float], float]:
    """Per layer relative error of the (MoE) FFN output vs the dense FFN on held-out profiled inputs, and the
    mean active neurons per token."""
    errs, active = [], []
    with torch.no_grad():
        for i, ffn in enumerate(model.ffns):
            x, h = prof["heldout"]["x"][i].float(), prof["heldout"]["h"][i].float()
            dense = h @ prof_down(model, i).T
            errs.append(float(((ffn(x) - dense).norm(dim=-1) / dense.norm(dim=-1).clamp_min(1e-6)).mean()))
            if ffn.n_experts:
                idx = torch.topk(x @ ffn.router.T, ffn.top_k, -1).indices
                active.append(float(ffn.shared + torch.tensor(ffn.widths, dtype=torch.float32)[idx].sum(-1).mean()))
    return errs, float(np.mean(active)) if active else float(model.cfg.ffn_width)


def prof_down(model: TuneModel, i: int) -> torch.Tensor:
    """Layer i's dense down weight [D, F] in the parent's neuron order."""
    f = model.ffns[i]
    if not f.n_experts:
        return f.down
    inv = torch.argsort(f.perm)
    return f.down[:, inv]


def _search_dev(path: Path, data: Path | None, n: int):
    """(tokens, examples, eos, max_len) for the answer-token loss on held-out search tasks, or None."""
    if not n or data is None:
        return None
    from tune.data import Tokens, search_examples

    tok = Tokens(path)
    return tok, search_examples(data, "dev", 0, n), tok._llm.token_eos(), 768


def eval_step(path: Path, work: Path, gguf: Path | None, recipe_path: Path | None, e2e_seqs: int,
              decode_tokens: int, kernels: str, data: Path | None = None, dev_examples: int = 16) -> dict:
    from tune.train import model_from_recipe

    prof = _profile_for(path, work)
    recipe = load_recipe(recipe_path or work / "searchmoe.npz")
    gguf = gguf or (recipe_path or work / "searchmoe.npz").with_suffix(".gguf")
    seqs = prof["heldout"]["tokens"][:e2e_seqs]
    dense = load_dense(path, recipe.n_layer)
    parent_stats = sequence_stats(dense, seqs)
    dev = _search_dev(path, data, dev_examples)
    out_dev = {"search_dev_loss_parent": _dev_loss(dense, *dev)} if dev else {}
    del dense
    moe = model_from_recipe(path, recipe)
    if dev:
        out_dev["search_dev_loss"] = _dev_loss(moe, *dev)
    errs, active = _ffn_errors(moe, prof)
    out = {"recipe": str(recipe_path or work / "searchmoe.npz"), "shape": recipe.shape.label(),
           "active_ffn_frac": round(active / recipe.ffn_width, 4),
           "ffn_rel_error": round(float(np.mean(errs)), 4), **compare(*parent_stats, *sequence_stats(moe, seqs)),
           **out_dev}
    if decode_tokens:
        out.update(decode_pair(path, Path(gguf), decode_tokens, kernels))
    out["qa_command"] = qa_command(gguf)
    (work / "eval.json").write_text(json.dumps(out, indent=1))
    return out


def decode_pair(parent: Path, gguf: Path, n_tokens: int, kernels: str, rounds: int = 2) -> dict:
    """Decode tokens/s of parent and MoE in our engine, alternated `rounds` times (best of each): on a shared
    machine the load changes between runs, and alternating keeps the ratio fair."""
    from tune.build import check_hmoe

    check_hmoe(gguf)
    best: dict[str, dict] = {}
    for _ in range(rounds):
        for name, path in (("parent", parent), ("moe", gguf)):
            r = decode_speed(path, n_tokens, kernels=kernels)
            if name not in best or r["decode_tok_s"] > best[name]["decode_tok_s"]:
                best[name] = r
    return {"decode_parent": best["parent"], "decode_moe": best["moe"],
            "decode_speedup": round(best["moe"]["decode_tok_s"] / best["parent"]["decode_tok_s"], 3)}


def sparsity_step(path: Path, work: Path, fracs: list[float]) -> dict:
    """Per fraction: mean over layers of the FFN error, per-token top neurons vs one fixed set (held-out)."""
    from tune.moefy import neuron_topk_error
    from tune.parent import open_parent

    prof = _profile_for(path, work)
    f = open_parent(path)
    downs = [f.tensor(f"blk.{i}.ffn_down.weight") for i in range(prof["n_layer"])]
    out = {}
    for frac in fracs:
        per_token = [neuron_topk_error(prof["heldout"]["h"][i], d, frac) for i, d in enumerate(downs)]
        fixed = [neuron_topk_error(prof["heldout"]["h"][i], d, frac, per_token=False) for i, d in enumerate(downs)]
        out[str(frac)] = {"per_token": round(float(np.mean(per_token)), 4), "fixed": round(float(np.mean(fixed)), 4),
                          "per_token_by_layer": [round(e, 3) for e in per_token]}
    (work / "sparsity.json").write_text(json.dumps(out, indent=1))
    return out
