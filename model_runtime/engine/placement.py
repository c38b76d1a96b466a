"""Placing a served model's routed experts between the GPU and the CPU, as the settings say (``--device cuda``).

The plan is made before any expert weight is read: expert sizes come from the model's config, the routing profile
from a file (or, the first time, from a calibration run of the model with every expert on the CPU, saved for next
time); then the loader reads each expert once, straight into the kernel of its side.

The pieces live in ``routing_profile`` (profiles, recording, calibration), ``placement_plan`` (plans) and
``hybrid_moe`` (the split layer); they are re-exported here.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import torch

from model_runtime.engine.hybrid_moe import (  # noqa: F401
    ExpertSubset,
    HybridExperts,
    PlacedMoELayer,
    _sources_layer,
    place_model,
    subset_expert_weights,
)
from model_runtime.engine.placement_plan import (  # noqa: F401
    STRATEGIES,
    Placement,
    Strategy,
    config_expert_bytes,
    expert_nbytes,
    model_expert_bytes,
    plan_placement,
)
from model_runtime.engine.routing_profile import (  # noqa: F401
    CALIBRATION_TEXT,
    PROFILE_VERSION,
    ProfileRecorder,
    RoutingProfile,
    attach_recorder,
    calibrate,
    layer_key,
)

log = logging.getLogger(__name__)

def _gpu_budget_bytes(settings: Any, device: str) -> int | None:
    gb = settings.expert_gpu_budget_gb
    if gb is not None:
        return int(gb * 2**30)
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return int(free * 0.8)  # leave room for attention, the KV cache and the kernels' scratch buffers
    return None


def _kernels(settings: Any, gpu_kernel: Any, cpu_kernel: Any) -> tuple[Any, Any]:
    from model_runtime.engine.kernels import get_kernel

    gpu_kernel = gpu_kernel or get_kernel(settings.torch_gpu_kernels)
    cpu_name = settings.torch_kernels
    cpu_kernel = cpu_kernel or get_kernel(cpu_name if cpu_name and not cpu_name.startswith("cuda") else "cpu")
    return gpu_kernel, cpu_kernel


def routing_profile_for(settings: Any, path: Path, cpu_kernel: Any,
                        profile: RoutingProfile | None = None) -> RoutingProfile | None:
    """The profile to plan from: given, saved at ``settings.routing_profile``, or (``frequency`` without one) a
    calibration run over built-in text on a model with every expert on the CPU kernel (saved when a path is set)."""
    if profile is not None:
        return profile
    saved = settings.routing_profile
    if saved is not None and Path(saved).exists():
        return RoutingProfile.load(saved)
    if settings.expert_placement != "frequency":
        return None
    from model_runtime.engine.llm import TorchMoELLM

    calib = TorchMoELLM(path, kernels=cpu_kernel, chat_template="none")
    profile = calibrate(calib.model, [calib.tokenize(text) for text in CALIBRATION_TEXT])
    calib.close()
    profile.meta.update(model=str(path), source="built-in calibration text")
    if saved is not None:
        profile.save(saved)
    return profile


def build_placed_model(path: Path, plan: Placement, gpu_kernel: Any, cpu_kernel: Any) -> Any:
    """The model with attention, norms, head and shared experts on the GPU kernel's device and each routed expert
    on the side ``plan`` says: every expert read once, into its side's kernel."""
    from model_runtime.engine.loader import load_model

    def ffn(i: int, src: Any) -> Any:
        layer = _sources_layer(src)
        if not layer.n_routed and layer.shared is None:
            return layer
        devices = plan.devices.get(layer_key(i)) or ["cpu"] * layer.n_routed
        return PlacedMoELayer(layer, src.routed, src.shared, devices, gpu_kernel, cpu_kernel)

    model, f = load_model(path, gpu_kernel, device=str(getattr(gpu_kernel, "device", "cpu")), ffn_builder=ffn)
    f.close()
    return model


def _place_within_memory(path: Path, profile: Any, sizes: dict, budget: int | None, strategy: str, gpu_kernel: Any,
                         cpu_kernel: Any) -> tuple[Any, Placement]:
    """Build the placed model; when the GPU runs out of memory, halve the experts' GPU bytes and try again with the
    most used experts (down to every expert on the CPU), saying so on stderr."""
    while True:
        plan = plan_placement(profile, sizes, budget, strategy)
        try:
            return build_placed_model(path, plan, gpu_kernel, cpu_kernel), plan
        except torch.OutOfMemoryError:
            if plan.gpu_bytes == 0:
                raise
            budget, strategy = plan.gpu_bytes // 2, "frequency"
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            msg = (f"GPU out of memory while placing experts; retrying with {budget / 2**30:.2f} GiB of experts on "
                   "the GPU (set MOESEARCH_EXPERT_GPU_BUDGET_GB to choose)")
            log.warning(msg)
            print(msg, file=sys.stderr, flush=True)


def load_placed_llm(settings: Any, *, gpu_kernel: Any = None, cpu_kernel: Any = None, path: Path | None = None,
                    profile: RoutingProfile | None = None, **llm_kwargs: Any) -> Any:
    """The ``torch`` backend on a CUDA machine: routed experts placed between GPU and CPU as ``settings`` say
    (``expert_placement``, ``expert_gpu_budget_gb``, ``routing_profile``, ``torch_gpu_kernels`` for the GPU side,
    ``torch_kernels`` for the CPU side). Raises GPUUnavailableError (one line) where there is no usable GPU."""
    from model_runtime.engine.arch import config_from_gguf
    from model_runtime.engine.gguf_file import GGUFModelFile
    from model_runtime.engine.kernels.triton_kernels import GPUUnavailableError, triton_runnable
    from model_runtime.engine.llm import TorchMoELLM

    if gpu_kernel is None:
        ok, why = triton_runnable("cuda")
        if not ok:
            raise GPUUnavailableError(f"--device cuda needs a CUDA GPU and triton: {why}; use --device cpu")
    gpu_kernel, cpu_kernel = _kernels(settings, gpu_kernel, cpu_kernel)
    path = Path(path or settings.model)
    f = GGUFModelFile(path)
    cfg = config_from_gguf(f)
    f.close()
    sizes = config_expert_bytes(cfg, getattr(gpu_kernel, "bits", 4), getattr(gpu_kernel, "group_size", 128))
    profile = routing_profile_for(settings, path, cpu_kernel, profile)
    model, plan = _place_within_memory(path, profile, sizes, _gpu_budget_bytes(settings, gpu_kernel.device),
                                       settings.expert_placement, gpu_kernel, cpu_kernel)
    llm = TorchMoELLM(path, model=model, n_ctx=settings.n_ctx, **llm_kwargs)
    llm.placement = plan
    return llm


def place_llm(llm: Any, settings: Any, *, gpu_kernel: Any = None, cpu_kernel: Any = None,
              profile: RoutingProfile | None = None) -> Placement:
    """Re-place a loaded ``TorchMoELLM``'s routed experts (re-planning while serving): the model is rebuilt from its
    file with the new plan, each expert read once into its side's kernel; returns the plan."""
    gpu_kernel, cpu_kernel = _kernels(settings, gpu_kernel, cpu_kernel)
    f_cfg = llm.model.cfg
    sizes = config_expert_bytes(f_cfg, getattr(gpu_kernel, "bits", 4), getattr(gpu_kernel, "group_size", 128))
    profile = routing_profile_for(settings, llm.path, cpu_kernel, profile)
    model, plan = _place_within_memory(llm.path, profile, sizes, _gpu_budget_bytes(settings, gpu_kernel.device),
                                       settings.expert_placement, gpu_kernel, cpu_kernel)
    llm.model, llm._cache, llm._cache_tokens = model, None, []
    llm.placement = plan
    return plan


def replan_llm(llm: Any, settings: Any, recorder: ProfileRecorder, *, gpu_kernel: Any = None,
               cpu_kernel: Any = None) -> Placement:
    """Re-place a served model from the routing recorded while serving (merged with the saved profile, if any);
    the recorder goes on counting on the re-placed layers."""
    saved = settings.routing_profile
    profile = recorder.profile
    if saved is not None and Path(saved).exists():
        profile = RoutingProfile.load(saved).merge(profile)
    plan = place_llm(llm, settings, gpu_kernel=gpu_kernel, cpu_kernel=cpu_kernel, profile=profile)
    llm.placement = plan
    attach_recorder(llm.model, recorder)  # the layers are new: keep recording on them
    return plan
