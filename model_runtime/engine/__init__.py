"""Our PyTorch MoE inference engine (backend `torch`).

GGUF files (gemma3, qwen2moe, qwen3moe, olmoe and our heterogeneous `moesearch-hmoe`) are read once, tensor by
tensor, straight into the kernels that keep them (`loader`); the FFNs run on expert kernels chosen by name
(`reference`, `cpu-int8`, `cpu-int4`; CUDA kernels register themselves when available).

Modules: `gguf_file` (reading, dequantization), `arch` (architecture descriptions -> `ModelConfig`), `loader`
(the one loader), `model` (the shared transformer and KV cache, on one device), `moe` (the hierarchical
heterogeneous MoE layer: route, then one kernel call per group), `kernels/` (the expert and linear kernel
interfaces and implementations), `routing_profile`, `placement_plan`, `hybrid_moe` and `placement` (experts split
between GPU and CPU), `expert_cache` (the dynamic GPU expert cache simulation), `hmoe` (our GGUF architecture),
`tokenizer`, `llm` (`TorchMoELLM`).
"""

from __future__ import annotations

from pathlib import Path

from model_runtime.engine.kernels import ExpertKernel, ExpertWeights, available_kernels, get_kernel, register_kernel


def load_torch_llm(path: str | Path, settings=None):
    """The `torch` backend: `path` (a GGUF file) run by our engine with the settings' kernels and device.

    Raises InvalidSettingsError (kernels for another device), GPUUnavailableError (`cuda` without a GPU)."""
    from model_runtime.engine.llm import TorchMoELLM
    from model_runtime.errors import InvalidSettingsError
    from model_runtime.registry import EMBEDDED
    from model_runtime.settings import ModelSettings

    settings = settings or ModelSettings()
    embedded = settings.model == EMBEDDED
    names = dict(name="embedded:gemma-3-270m-q4_k_m" if embedded else settings.model,
                 chat_template="none" if embedded else "auto", n_threads=settings.n_threads)
    if settings.torch_device == "cuda":  # experts placed between GPU and CPU before any weight is read
        from model_runtime.engine.placement import load_placed_llm

        return load_placed_llm(settings, path=Path(path), **names)
    kernel = get_kernel(settings.torch_kernels)
    if kernel.device != settings.torch_device:
        alts = [n for n in available_kernels() if get_kernel(n).device == settings.torch_device]
        raise InvalidSettingsError(
            f"expert kernels {settings.torch_kernels!r} run on {kernel.device}, not on {settings.torch_device}; "
            f"kernels for {settings.torch_device}: {', '.join(alts) or 'none available'} (MOESEARCH_TORCH_KERNELS)")
    return TorchMoELLM(path, kernels=settings.torch_kernels, device=settings.torch_device, n_ctx=settings.n_ctx,
                       prepared_cache_dir=settings.prepared_cache_dir, **names)


__all__ = ["load_torch_llm", "ExpertKernel", "ExpertWeights", "available_kernels", "get_kernel", "register_kernel"]
