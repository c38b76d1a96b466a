"""Model runtime settings, read from MOESEARCH_* environment variables (or passed explicitly)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("moesearch"))


class ModelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOESEARCH_", extra="ignore")

    model: str = Field("embedded", description="'embedded', a preset name (see `moesearch model list`) or a .gguf path")
    backend: Literal["llamacpp", "openai", "torch"] = "llamacpp"
    n_ctx: int = Field(8192, ge=256, description="context size in tokens (llamacpp/torch)")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; default: all cores")
    n_gpu_layers: int = Field(0, description="layers offloaded to the GPU when llama.cpp is built with CUDA; -1 = all")
    openai_url: str = Field("http://127.0.0.1:8080/v1", description="base URL of an OpenAI-compatible server")
    openai_api_key: str = "none"
    openai_model: str | None = Field(None, description="model name sent to the server; default: the server's first")
    request_timeout_s: float = Field(120.0, gt=0)
    models_dir: Path = Field(default_factory=lambda: default_cache_dir() / "models")
    torch_device: str = Field("cpu", description="device for the torch backend: cpu or cuda")
    torch_kernels: str = Field("cpu", description="expert kernels for the torch backend: reference, cpu or cuda")
    prepared_cache_dir: Path | None = Field(
        default_factory=lambda: default_cache_dir() / "prepared",
        description="torch backend: where CPU-quantized weights are saved once and memory-mapped on later loads "
        "(one file per GGUF and kernel, about the size of the int8/int4 weights)")
    torch_gpu_kernels: str = Field("cuda-int4", description="GPU expert kernels with --device cuda: cuda-int4 or "
                                   "cuda-int8 (Triton; the CPU side uses torch_kernels)")
    expert_placement: Literal["all-gpu", "all-cpu", "frequency"] = Field(
        "frequency", description="with --device cuda, where routed experts run: all on the GPU, all on the CPU, or "
        "the most used ones on the GPU within expert_gpu_budget_gb")
    expert_gpu_budget_gb: float | None = Field(None, ge=0, description="GPU memory for routed experts in GiB "
                                               "(default: 80% of the GPU's free memory)")
    routing_profile: Path | None = Field(None, description="routing profile (JSON) for the frequency placement; "
                                         "recorded by a calibration run and saved there when the file is missing")
