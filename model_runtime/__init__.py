"""Model runtime: the `LLM` interface and its backends (llama.cpp, OpenAI-compatible HTTP, our torch MoE engine)."""

from model_runtime.base import LLM, Completion, CompletionStream, Message
from model_runtime.errors import ModelRuntimeError
from model_runtime.settings import ModelSettings


def load_llm(settings: ModelSettings | None = None, **overrides) -> LLM:
    """Build the LLM that `settings` (MOESEARCH_* environment variables by default) describe."""
    settings = (settings or ModelSettings()).model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if settings.backend == "openai":
        from model_runtime.openai_backend import OpenAICompatLLM

        return OpenAICompatLLM(settings.openai_url, model=settings.openai_model, api_key=settings.openai_api_key,
                               timeout_s=settings.request_timeout_s)
    from model_runtime.registry import EMBEDDED, resolve_model

    path = resolve_model(settings.model, settings)
    if settings.backend == "torch":
        from model_runtime.engine import load_torch_llm  # our MoE engine

        return load_torch_llm(path, settings)
    from model_runtime.llamacpp_backend import LlamaCppLLM

    return LlamaCppLLM(path, n_ctx=settings.n_ctx, n_threads=settings.n_threads, n_gpu_layers=settings.n_gpu_layers,
                       chat_template="none" if settings.model == EMBEDDED else "auto",
                       name=settings.model if settings.model != EMBEDDED else "embedded:gemma-3-270m-q4_k_m")


__all__ = ["LLM", "Completion", "CompletionStream", "Message", "ModelRuntimeError", "ModelSettings", "load_llm"]
