"""Reading GGUF files with the `gguf` package: metadata, tensors, dequantization to float32 torch tensors.

Shapes are given in torch (row-major) order, i.e. GGUF's `ne` reversed: a GGUF tensor with ne = [D, F, E] (the
stacked experts `blk.N.ffn_gate_exps.weight`) is a torch tensor [E, F, D].
"""

from __future__ import annotations

from dataclasses import dataclass
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


_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NP = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32, 6: np.float32, 7: np.bool_,
       10: np.uint64, 11: np.int64, 12: np.float64}


@dataclass
class TensorInfo:
    name: str
    tensor_type: Any  # gguf.GGMLQuantizationType
    ne: tuple[int, ...]  # GGUF order (fastest first)
    offset: int  # from the start of the data section
    n_bytes: int
    data: np.ndarray | None = None  # raw data, mapped: [rows..., bytes per row] (quantized) or the float array


def read_gguf(path: Path) -> tuple[dict[str, Any], dict[str, TensorInfo]]:
    """Parse a GGUF file's header (metadata and tensor table) and map the tensor data (numpy memmap).

    The `gguf` package's GGUFReader builds a numpy view per array element, which takes ~45 s for a 262k-token
    vocabulary; this reads the same layout with `struct` in well under a second."""
    import struct

    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    buf = np.memmap(path, dtype=np.uint8, mode="r")
    mv = memoryview(buf)
    if bytes(mv[:4]) != b"GGUF":
        raise ValueError("no GGUF magic")
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", mv, 4)
    if version < 2:
        raise ValueError(f"GGUF version {version} is too old")
    pos = 24

    def string() -> str:
        nonlocal pos
        (n,) = struct.unpack_from("<Q", mv, pos)
        pos += 8
        out = bytes(mv[pos:pos + n]).decode("utf-8", "replace")
        pos += n
        return out

    def value(vtype: int) -> Any:
        nonlocal pos
        if vtype == 8:
            return string()
        if vtype == 9:
            (sub, n) = struct.unpack_from("<IQ", mv, pos)
            pos += 12
            if sub == 8:
                return [string() for _ in range(n)]
            if sub == 9:
                return [value(9) for _ in range(n)]
            dt = np.dtype(_NP[sub]).newbyteorder("<")
            arr = np.frombuffer(mv, dtype=dt, count=n, offset=pos)
            pos += n * dt.itemsize
            return arr.tolist()
        fmt = _SCALAR[vtype]
        (v,) = struct.unpack_from(fmt, mv, pos)
        pos += struct.calcsize(fmt)
        return v

    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = string()
        (vtype,) = struct.unpack_from("<I", mv, pos)
        pos += 4
        meta[key] = value(vtype)
    infos = []
    for _ in range(n_tensors):
        name = string()
        (nd,) = struct.unpack_from("<I", mv, pos)
        pos += 4
        ne = struct.unpack_from(f"<{nd}Q", mv, pos)
        pos += 8 * nd
        ttype, off = struct.unpack_from("<IQ", mv, pos)
        pos += 12
        infos.append((name, ttype, tuple(int(x) for x in ne), off))
    align = int(meta.get("general.alignment", 32))
    start = (pos + align - 1) // align * align
    tensors: dict[str, TensorInfo] = {}
    for name, ttype, ne, off in infos:
        qt = GGMLQuantizationType(ttype)
        block, type_size = GGML_QUANT_SIZES[qt]
        n_el = int(np.prod(ne)) if ne else 1
        n_bytes = n_el * type_size // block
        begin = start + off
        if begin + n_bytes > buf.shape[0]:
            raise ValueError(f"tensor {name} ends past the end of the file (truncated file)")
        raw = buf[begin:begin + n_bytes]
        rows = tuple(reversed(ne[1:]))
        if qt in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            data = raw.view(np.float32 if qt == GGMLQuantizationType.F32 else np.float16).reshape(*rows, ne[0])
        else:
            data = raw.reshape(*rows, ne[0] // block * type_size)
        tensors[name] = TensorInfo(name, qt, ne, off, n_bytes, data)
    return meta, tensors


class GGUFModelFile:
    """A GGUF file: `metadata` (key -> python value), `arch`, `hp(key)` for `{arch}.key`, and `tensor(name, shape)`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise ModelNotFoundError(f"model file {self.path} does not exist; check the path or run `moesearch model pull`")
        try:
            self.metadata, self._tensors = read_gguf(self.path)
        except Exception as e:  # struct/ValueError/KeyError on damaged files
            raise CorruptModelError(f"{self.path} is not a readable GGUF file ({e}); download it again") from e
        self.arch: str = str(self.metadata.get("general.architecture", ""))

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
        return tuple(reversed(self._tensors[name].ne))

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
        self._tensors = {}
