"""Expert kernels: one interface (`ExpertKernel`), chosen by name, kept out of model code.

Built in: `reference` (float32, the ground truth), `cpu-int8`, `cpu-int4`. `cpu` is an alias of `cpu-int8`.
CUDA kernels register themselves from `kernels/triton_*.py` when importable.
"""

from model_runtime.engine.kernels.base import (
    ExpertKernel,
    ExpertWeights,
    FloatLinear,
    LinearKernel,
    UnknownKernelError,
    activation_fn,
    available_kernels,
    get_kernel,
    group_by_expert,
    register_kernel,
)
from model_runtime.engine.kernels.cpu import CPUInt4Kernel, CPUInt8Kernel, Int4Linear, Int8Linear
from model_runtime.engine.kernels.reference import ReferenceKernel

register_kernel("reference", ReferenceKernel)
register_kernel("cpu-int8", CPUInt8Kernel)
register_kernel("cpu-int4", CPUInt4Kernel)
register_kernel("cpu", CPUInt8Kernel)


def _register_optional() -> None:
    """Kernels in optional modules (CUDA/Triton) register themselves on import; absent ones are skipped."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("triton_"):
            try:
                importlib.import_module(f"{__name__}.{mod.name}")
            except Exception:  # no triton / no GPU: those kernels are simply not available
                pass


_register_optional()

__all__ = ["ExpertKernel", "ExpertWeights", "FloatLinear", "LinearKernel", "UnknownKernelError", "activation_fn",
           "available_kernels", "get_kernel", "group_by_expert", "register_kernel", "ReferenceKernel", "CPUInt8Kernel",
           "CPUInt4Kernel", "Int8Linear", "Int4Linear"]
