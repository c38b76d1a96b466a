"""`moesearch tune ...`: profile, moefy, train, export, build, eval (SearchMoE from a dense parent).

Files live in the work folder (--work, default <models_dir>/tune/<parent file stem>): profile.pt, moefied.npz
(recipe without adapters), curve.json / curve.md, train/ckpt.pt, trained.npz, searchmoe.npz (the shipped
recipe) and searchmoe.gguf. Timings in the help are for Gemma 3 270M on a shared 2-core CPU (1 thread).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from tune.errors import TuneError

app = typer.Typer(help="SearchMoE: turn a dense model into a hierarchical heterogeneous MoE, tune it for search, "
                       "build its moesearch-hmoe GGUF. Steps in order: profile, moefy, train, export, eval.",
                  no_args_is_help=True)

ParentOpt = Annotated[str, typer.Option("--parent",
                                        help="dense parent: 'embedded', a registered model or a .gguf path")]
WorkOpt = Annotated[Optional[Path], typer.Option("--work", help="work folder (default <models_dir>/tune/<parent>)")]
DataOpt = Annotated[Optional[Path], typer.Option("--data", help="shared data folder with wiki_pages/ and train/ "
                                                 "(default $MOESEARCH_SHARED_DATA or ../shared/data)")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="torch CPU threads (default MOESEARCH_N_THREADS "
                                                   "or 1: on a busy machine more threads are slower)")]
LayersOpt = Annotated[Optional[int], typer.Option("--layers", help="only the first N layers (quick checks)")]


def _setup(parent: str, work: Path | None, threads: int | None) -> tuple[Path, Path]:
    import torch

    from model_runtime.settings import ModelSettings
    from tune.parent import resolve_parent

    settings = ModelSettings()
    torch.set_num_threads(threads or settings.n_threads or 1)
    torch.manual_seed(0)
    path = resolve_parent(parent)
    work = work or settings.models_dir / "tune" / path.stem
    work.mkdir(parents=True, exist_ok=True)
    return path, work


def _data(data: Path | None) -> Path:
    for cand in [data, os.environ.get("MOESEARCH_SHARED_DATA"), Path("shared/data"), Path("../shared/data")]:
        if cand and (Path(cand) / "wiki_pages").exists():
            return Path(cand)
    raise TuneError("shared data (wiki_pages/, train/) not found; pass --data or set MOESEARCH_SHARED_DATA")


def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True, file=sys.stderr)


@app.command("profile")
def profile_command(parent: ParentOpt = "embedded", work: WorkOpt = None, data: DataOpt = None,
                    threads: ThreadsOpt = None, layers: LayersOpt = None,
                    tokens: int = typer.Option(4096, help="calibration tokens"),
                    heldout: int = typer.Option(1024, help="held-out tokens (other wiki pages)"),
                    seq_len: int = typer.Option(256, help="tokens a sequence")) -> None:
    """Record the parent's FFN activations on wiki text (Gemma 270M, 4096 + 1024 tokens: ~1 min; 500 MB file)."""
    from tune.profile import run_profile

    path, work = _setup(parent, work, threads)
    with _bar(tokens + heldout, "profile") as bar:
        out = run_profile(path, _data(data), work / "profile.pt", tokens, heldout, seq_len, layers, bar.update)
    typer.echo(json.dumps({**out, "profile": str(work / "profile.pt")}))


def _shape_opts(spec: str, ffn_width: int):
    """'SHARED:WIDE:NARROW:TOPK' -> MoEShape."""
    from tune.moefy import make_shape

    try:
        shared, wide, narrow, k = (int(v) for v in spec.split(":"))
    except ValueError:
        raise TuneError(f"shape {spec!r} is not SHARED:WIDE:NARROW:TOPK (e.g. 512:4:16:6)") from None
    return make_shape(ffn_width, shared, wide, narrow, k)


@app.command("moefy")
def moefy_command(parent: ParentOpt = "embedded", work: WorkOpt = None, threads: ThreadsOpt = None,
                  shape: str = typer.Option("512:4:16:6", help="SHARED:WIDE:NARROW:TOPK: shared neurons, wide and "
                                            "narrow experts (wide = 2x narrow), experts a token uses"),
                  curve: Optional[str] = typer.Option(None, help="comma-separated shapes to measure (writes curve.md)"),
                  steps: int = typer.Option(200, help="router distillation steps a layer"),
                  e2e_seqs: int = typer.Option(4, help="held-out sequences for perplexity / agreement")) -> None:
    """Split every FFN into shared + routed experts and distil routers, then measure (Gemma 270M, busy machine:
    ~5-7 min a shape); writes moefied.npz for SHAPE and the measured curve (curve.md)."""
    from tune.steps import moefy_step

    path, work = _setup(parent, work, threads)
    shapes = [s for s in (curve.split(",") if curve else []) if s.strip()]
    rows = moefy_step(path, work, shape, shapes, steps, e2e_seqs, _shape_opts)
    typer.echo(json.dumps(rows[-1]))


@app.command("sparsity")
def sparsity_command(parent: ParentOpt = "embedded", work: WorkOpt = None, threads: ThreadsOpt = None,
                     fracs: str = typer.Option("0.25,0.5,0.75", help="fractions of neurons kept")) -> None:
    """How sparse the parent is, without experts: FFN error when each token keeps its top fraction of neurons,
    or one fixed set keeps it for all tokens (held-out profile tokens; ~30 s)."""
    from tune.steps import sparsity_step

    path, work = _setup(parent, work, threads)
    typer.echo(json.dumps(sparsity_step(path, work, [float(f) for f in fracs.split(",")])))


@app.command("train")
def train_command(parent: ParentOpt = "embedded", work: WorkOpt = None, data: DataOpt = None,
                  threads: ThreadsOpt = None, steps: int = typer.Option(200, help="optimizer steps (one example each)"),
                  lr: float = typer.Option(2e-4, help="LoRA learning rate"), rank: int = typer.Option(8),
                  max_len: int = typer.Option(768, help="skip examples longer than this (tokens)"),
                  examples: Optional[int] = typer.Option(None, help="use only the first N examples"),
                  save_every: int = typer.Option(25, help="checkpoint every N steps"),
                  restart: bool = typer.Option(False, help="discard an existing checkpoint"),
                  unanswerable: Optional[float] = typer.Option(
                      None, help="cap the share of 'not in the evidence' examples (default: all, ~40%; 0.15 "
                                 "advised: at 40% the tuned 270M MoE answered every QA question that way)")) -> None:
    """Tune routers + LoRA on search tasks (Gemma 270M, 1 thread, busy machine: 10-30 s a step; 60 steps 20 min).
    Interrupted? Run the same command again: it resumes from the last checkpoint."""
    from tune.steps import train_step
    from tune.train import TrainConfig

    path, work = _setup(parent, work, threads)
    cfg = TrainConfig(steps=steps, lr=lr, rank=rank, max_len=max_len, save_every=save_every)
    out = train_step(path, work, _data(data), cfg, examples, restart, unanswerable_share=unanswerable)
    typer.echo(json.dumps(out))


@app.command("export")
def export_command(parent: ParentOpt = "embedded", work: WorkOpt = None, threads: ThreadsOpt = None,
                   untrained: bool = typer.Option(False, help="export the moefied recipe (no training)"),
                   out: Optional[Path] = typer.Option(None, help="recipe path (default <work>/searchmoe.npz)")) -> None:
    """Write the shipped recipe and build its GGUF from the parent (Gemma 270M: 20-30 s)."""
    from tune.steps import export_step

    path, work = _setup(parent, work, threads)
    typer.echo(json.dumps(export_step(path, work, untrained, out)))


@app.command("build")
def build_command(recipe: Path = typer.Argument(..., help="a recipe (.npz) from `tune export`"),
                  parent: ParentOpt = "embedded", out: Path = typer.Option(..., help="the GGUF to write"),
                  threads: ThreadsOpt = None) -> None:
    """Build the moesearch-hmoe GGUF from a shipped recipe and its parent, sha256-checked (20-30 s)."""
    from tune.build import build_gguf
    from tune.recipe import load_recipe

    path, _ = _setup(parent, out.parent, threads)
    typer.echo(json.dumps(build_gguf(load_recipe(recipe), path, out)))


@app.command("eval")
def eval_command(parent: ParentOpt = "embedded", work: WorkOpt = None, threads: ThreadsOpt = None,
                 gguf: Optional[Path] = typer.Option(None, help="built GGUF (default <work>/searchmoe.gguf)"),
                 recipe: Optional[Path] = typer.Option(None, help="recipe (default <work>/searchmoe.npz)"),
                 e2e_seqs: int = typer.Option(4, help="held-out sequences for perplexity / agreement"),
                 decode_tokens: int = typer.Option(32, help="tokens for the decode speed (0: skip)"),
                 kernels: str = typer.Option("cpu", help="engine expert kernels for the speed check"),
                 data: DataOpt = None,
                 dev_examples: int = typer.Option(16, help="held-out search tasks for the answer-token loss")) -> None:
    """Quality retained vs the parent on held-out text, and decode tokens/s of parent and MoE in our engine
    (Gemma 270M, busy machine: ~5 min). Prints the command for the QA evaluation."""
    from tune.steps import eval_step

    path, work = _setup(parent, work, threads)
    typer.echo(json.dumps(eval_step(path, work, gguf, recipe, e2e_seqs, decode_tokens, kernels, _data(data),
                                     dev_examples)))


def main() -> None:
    try:
        app()
    except TuneError as e:
        typer.echo(str(e), err=True)
        raise SystemExit(e.exit_code) from None


if __name__ == "__main__":
    main()
