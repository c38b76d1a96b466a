"""Our PyTorch MoE inference engine (backend `torch`).

GGUF files (gemma3, qwen2moe, qwen3moe, olmoe and our heterogeneous `moesearch-hmoe`) are read with the `gguf`
package and dequantized to float32; the FFNs run on expert kernels chosen by name (`reference`, `cpu-int8`,
`cpu-int4`; CUDA kernels register themselves when available).

Modules: `gguf_file` (reading, dequantization), `arch` (architecture descriptions -> `ModelConfig`), `model` (the
shared transformer, KV cache), `moe` (the hierarchical heterogeneous MoE layer: route, then one kernel call per
group), `kernels/` (the kernel interface and implementations), `hmoe` (our GGUF architecture), `tokenizer`,
`llm` (`TorchMoELLM`).
"""

from __future__ import annotations

from pathlib import Path

from model_runtime.engine.kernels import ExpertKernel, ExpertWeights, available_kernels, get_kernel, register_kernel


def load_torch_llm(path: str | Path, settings=None):
    """The `torch` backend: `path` (a GGUF file) run by our engine with the settings' kernels and device."""
    from model_runtime.engine.llm import TorchMoELLM
    from model_runtime.errors import InvalidSettingsError
    from model_runtime.settings import ModelSettings

    settings = settings or ModelSettings()
    if settings.torch_device == "cuda":  # experts placed between GPU and CPU (the placement module's job)
        try:
            from model_runtime.engine.placement import load_placed_llm
        except ImportError as e:
            raise InvalidSettingsError(f"the torch backend on cuda is not available here ({e}); use --device cpu") \
                from e
        return load_placed_llm(settings)
    kernel = get_kernel(settings.torch_kernels)
    if kernel.device != settings.torch_device:
        alts = [n for n in available_kernels() if get_kernel(n).device == settings.torch_device]
        raise InvalidSettingsError(
            f"expert kernels {settings.torch_kernels!r} run on {kernel.device}, not on {settings.torch_device}; "
            f"kernels for {settings.torch_device}: {', '.join(alts) or 'none available'} (MOESEARCH_TORCH_KERNELS)")
    from model_runtime.registry import EMBEDDED

    return TorchMoELLM(path, kernels=settings.torch_kernels, device=settings.torch_device, n_ctx=settings.n_ctx,
                       n_threads=settings.n_threads,
                       name="embedded:gemma-3-270m-q4_k_m" if settings.model == EMBEDDED else settings.model,
                       chat_template="none" if settings.model == EMBEDDED else "auto")


__all__ = ["load_torch_llm", "ExpertKernel", "ExpertWeights", "available_kernels", "get_kernel", "register_kernel"]
