"""Reading GGUF files with the `gguf` package: metadata, tensors, dequantization to float32 torch tensors.

Shapes are given in torch (row-major) order, i.e. GGUF's `ne` reversed: a GGUF tensor with ne = [D, F, E] (the
stacked experts `blk.N.ffn_gate_exps.weight`) is a torch tensor [E, F, D].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_runtime.errors import CorruptModelError, ModelNotFoundError, UnsupportedModelError

_MISSING = object()


def _qtypes():
    from gguf import GGMLQuantizationType as Q

    return Q


def supported_types() -> list[str]:
    Q = _qtypes()
    return [t.name for t in (Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q5_0, Q.Q4_K, Q.Q5_K, Q.Q6_K)]


def dequantize(data: np.ndarray, qtype, shape: tuple[int, ...], name: str = "?") -> torch.Tensor:
    """Raw GGUF tensor data (as the reader maps it) -> float32 torch tensor of `shape`, dequantized in row chunks."""
    from gguf import quants

    Q = _qtypes()
    if qtype.name not in supported_types():
        raise UnsupportedModelError(
            f"tensor {name} has type {qtype.name}, which the torch engine does not dequantize; supported: "
            f"{', '.join(supported_types())}; use a file quantized with one of those or the llamacpp backend")
    rows = data.reshape(-1, data.shape[-1]) if data.ndim > 1 else data.reshape(1, -1)
    out = np.empty((rows.shape[0], int(np.prod(shape)) // rows.shape[0]), dtype=np.float32)
    step = max(1, (1 << 22) // max(1, out.shape[1]))
    for i in range(0, rows.shape[0], step):
        chunk = np.asarray(rows[i:i + step])
        if qtype == Q.F32:
            out[i:i + step] = chunk.view(np.float32).reshape(chunk.shape[0], -1)
        else:
            out[i:i + step] = quants.dequantize(chunk, qtype).reshape(chunk.shape[0], -1)
    return torch.from_numpy(out.reshape(shape))


class GGUFModelFile:
    """A GGUF file: `metadata` (key -> python value), `arch`, `hp(key)` for `{arch}.key`, and `tensor(name, shape)`."""

    def __init__(self, path: str | Path):
        from gguf import GGUFReader

        self.path = Path(path)
        if not self.path.exists():
            raise ModelNotFoundError(f"model file {self.path} does not exist; check the path or run `moesearch model pull`")
        try:
            self._reader = GGUFReader(str(self.path), "r")
        except Exception as e:  # the gguf package raises ValueError/struct errors on damaged files
            raise CorruptModelError(f"{self.path} is not a readable GGUF file ({e}); download it again") from e
        self.metadata: dict[str, Any] = {}
        for name, field in self._reader.fields.items():
            if name.startswith("GGUF."):
                continue
            try:
                self.metadata[name] = field.contents()
            except Exception:
                self.metadata[name] = None
        self.arch: str = str(self.metadata.get("general.architecture", ""))
        self._tensors = {t.name: t for t in self._reader.tensors}

    # metadata
    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key in self.metadata and self.metadata[key] is not None:
            return self.metadata[key]
        if default is _MISSING:
            raise CorruptModelError(f"{self.path.name} lacks the metadata key {key!r} that architecture "
                                    f"{self.arch!r} needs; the file is incomplete or not a {self.arch} model")
        return default

    def hp(self, key: str, default: Any = _MISSING) -> Any:
        """A hyperparameter under the architecture's prefix: hp('block_count') reads '{arch}.block_count'."""
        return self.get(f"{self.arch}.{key}", default)

    # tensors
    @property
    def tensor_names(self) -> list[str]:
        return list(self._tensors)

    def has(self, name: str) -> bool:
        return name in self._tensors

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(n) for n in reversed(self._tensors[name].shape.tolist()))

    def tensor_type(self, name: str) -> str:
        return self._tensors[name].tensor_type.name

    def nbytes(self, name: str) -> int:
        return int(self._tensors[name].n_bytes)

    def tensor(self, name: str, shape: tuple[int, ...] | None = None, *, optional: bool = False) -> torch.Tensor | None:
        t = self._tensors.get(name)
        if t is None:
            if optional:
                return None
            raise CorruptModelError(f"{self.path.name} lacks tensor {name} that a {self.arch} model needs; "
                                    "the file is incomplete or damaged")
        got = self.shape(name)
        if shape is not None:
            want = tuple(int(s) for s in shape)
            # GGUF drops trailing ne=1 dimensions in some writers; compare element layout, not rank alone
            if got != want and (int(np.prod(got)) != int(np.prod(want)) or [g for g in got if g != 1]
                                != [w for w in want if w != 1]):
                raise CorruptModelError(f"tensor {name} in {self.path.name} has shape {list(got)} but the metadata "
                                        f"implies {list(want)}; the file does not match its metadata")
            got = want
        try:
            return dequantize(t.data, t.tensor_type, got, name)
        except (UnsupportedModelError, CorruptModelError):
            raise
        except (ValueError, TypeError) as e:
            raise CorruptModelError(f"tensor {name} in {self.path.name} could not be read ({e})") from e

    def close(self) -> None:
        r = getattr(self, "_reader", None)
        if r is not None:
            mm = getattr(r, "data", None)
            self._reader = None
            self._tensors = {}
            del mm
