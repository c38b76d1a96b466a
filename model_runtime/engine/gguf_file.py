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


class _HeaderReader:
    """Reads GGUF header values (little-endian scalars, strings, arrays) from a memory view, front to back."""

    def __init__(self, mv: memoryview, pos: int = 0):
        self.mv, self.pos = mv, pos

    def unpack(self, fmt: str) -> tuple:
        import struct

        out = struct.unpack_from(fmt, self.mv, self.pos)
        self.pos += struct.calcsize(fmt)
        return out

    def string(self) -> str:
        (n,) = self.unpack("<Q")
        out = bytes(self.mv[self.pos:self.pos + n]).decode("utf-8", "replace")
        self.pos += n
        return out

    def _strings(self, n: int) -> list[str]:
        """n strings in a row, in one tight loop (a 262k-token vocabulary: 0.3 s instead of 1-1.6 s)."""
        mv, pos, out, from_bytes = self.mv, self.pos, [], int.from_bytes
        for _ in range(n):
            k = from_bytes(mv[pos:pos + 8], "little")
            pos += 8
            out.append(str(mv[pos:pos + k], "utf-8", "replace"))
            pos += k
        self.pos = pos
        return out

    def value(self, vtype: int) -> Any:
        if vtype == 8:
            return self.string()
        if vtype == 9:
            return self.array()
        return self.unpack(_SCALAR[vtype])[0]

    def array(self) -> list:
        sub, n = self.unpack("<IQ")
        if sub == 8:
            return self._strings(n)
        if sub == 9:
            return [self.array() for _ in range(n)]
        dt = np.dtype(_NP[sub]).newbyteorder("<")
        arr = np.frombuffer(self.mv, dtype=dt, count=n, offset=self.pos)
        self.pos += n * dt.itemsize
        return arr.tolist()

    def metadata(self, n_kv: int) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = self.string()
            (vtype,) = self.unpack("<I")
            meta[key] = self.value(vtype)
        return meta

    def tensor_table(self, n_tensors: int) -> list[tuple[str, int, tuple[int, ...], int]]:
        """(name, GGML type id, ne, offset in the data section) per tensor."""
        infos = []
        for _ in range(n_tensors):
            name = self.string()
            (nd,) = self.unpack("<I")
            ne = self.unpack(f"<{nd}Q")
            ttype, off = self.unpack("<IQ")
            infos.append((name, ttype, tuple(int(x) for x in ne), off))
        return infos


def _map_tensor(buf: np.ndarray, start: int, name: str, ttype: int, ne: tuple[int, ...], off: int) -> TensorInfo:
    """The tensor's raw data as a view of the mapped file: [rows..., bytes per row], or the float array."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

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
    return TensorInfo(name, qt, ne, off, n_bytes, data)


def read_gguf(path: Path) -> tuple[dict[str, Any], dict[str, TensorInfo]]:
    """Parse a GGUF file's header (metadata and tensor table) and map the tensor data (numpy memmap).

    Format: github.com/ggml-org/ggml/blob/master/docs/gguf.md. The `gguf` package's GGUFReader builds a numpy view
    per array element, which takes ~45 s for a 262k-token vocabulary; this reads the same layout with `struct` in
    well under a second."""
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    mv = memoryview(buf)
    if bytes(mv[:4]) != b"GGUF":
        raise ValueError("no GGUF magic")
    rd = _HeaderReader(mv, 4)
    version, n_tensors, n_kv = rd.unpack("<IQQ")
    if version < 2:
        raise ValueError(f"GGUF version {version} is too old")
    meta = rd.metadata(n_kv)
    infos = rd.tensor_table(n_tensors)
    align = int(meta.get("general.alignment", 32))
    start = (rd.pos + align - 1) // align * align
    return meta, {name: _map_tensor(buf, start, name, ttype, ne, off) for name, ttype, ne, off in infos}


class GGUFModelFile:
    """A GGUF file: `metadata` (key -> python value), `arch`, `hp(key)` for `{arch}.key`, and `tensor(name, shape)`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise ModelNotFoundError(f"model file {self.path} does not exist; check the path or run `moesearch model pull`")
        try:
            self.metadata, self._tensors = read_gguf(self.path)
            first = next(iter(self._tensors.values()), None)
            self._buf = first.data if first is not None else None
            while self._buf is not None and not hasattr(self._buf, "_mmap"):  # up to the file's np.memmap
                self._buf = getattr(self._buf, "base", None)
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

    def _info(self, name: str, shape: tuple[int, ...] | None, optional: bool = False) -> tuple[TensorInfo, tuple]:
        t = self._tensors.get(name)
        if t is None:
            if optional:
                return None, ()
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
        return t, got

    def _dequantize(self, t: TensorInfo, data: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        try:
            return dequantize(data, t.tensor_type, shape, t.name)
        except (UnsupportedModelError, CorruptModelError):
            raise
        except (ValueError, TypeError) as e:
            raise CorruptModelError(f"tensor {t.name} in {self.path.name} could not be read ({e})") from e

    def tensor(self, name: str, shape: tuple[int, ...] | None = None, *, optional: bool = False) -> torch.Tensor | None:
        """The whole tensor, dequantized to float32 torch order (`shape` checked against the file when given)."""
        t, got = self._info(name, shape, optional)
        return None if t is None else self._dequantize(t, t.data, got)

    def expert(self, name: str, e: int, shape: tuple[int, ...]) -> torch.Tensor:
        """Expert `e` of a stacked [E, ...] tensor, dequantized alone: float32 of `shape` (the per-expert shape).
        Only that expert's bytes are read, so loading costs one expert of float32 at a time."""
        t, got = self._info(name, None)
        if int(np.prod(got[1:])) != int(np.prod(shape)) or not 0 <= e < got[0]:
            raise CorruptModelError(f"tensor {name} in {self.path.name} has shape {list(got)}, which does not hold "
                                    f"expert {e} of shape {list(shape)}; the file does not match its metadata")
        return self._dequantize(t, t.data[e], tuple(shape))

    def row_chunks(self, name: str, rows: int):
        """A 2-D tensor [N, D] as float32 chunks of at most `rows` rows, read one after the other."""
        t, (n, d) = self._info(name, None)
        for i in range(0, n, rows):
            chunk = t.data[i:i + rows]
            yield self._dequantize(t, chunk, (chunk.shape[0], d))

    def rows(self, name: str) -> "QuantizedRows":
        """A 2-D tensor kept in its file type (mapped), for row lookups (the embedding table)."""
        t, got = self._info(name, None)
        if t.tensor_type.name not in supported_types():
            self._dequantize(t, t.data[:1], (1, got[-1]))  # raises the unsupported-type message
        return QuantizedRows(t, got)

    def release_pages(self) -> None:
        """Drop the file pages read so far from this process's resident memory (they stay in the page cache; the
        embedding rows still in use come back on demand)."""
        import mmap

        m = getattr(self._buf, "_mmap", None)
        if m is not None and hasattr(m, "madvise"):
            m.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        self._tensors = {}


class QuantizedRows:
    """An [N, D] tensor left in its GGUF type in the mapped file; `lookup(ids)` dequantizes only those rows.

    Used for the embedding table: one row is read per token, so it never needs a float32 (or any) copy."""

    def __init__(self, info: TensorInfo, shape: tuple[int, ...]):
        self.info, self.shape = info, tuple(shape)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [T] int64 -> float32 [T, D]."""
        idx = ids.reshape(-1).cpu().numpy()
        rows = np.asarray(self.info.data[idx])
        return dequantize(rows, self.info.tensor_type, (len(idx), self.shape[-1]), self.info.name)

    def full(self) -> torch.Tensor:
        return dequantize(self.info.data, self.info.tensor_type, self.shape, self.info.name)
