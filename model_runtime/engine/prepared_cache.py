"""The prepared-weight cache: a GGUF's quantized weights written once, memory-mapped on every later load.

What a CPU kernel prepares at load (int8 rows and scales, int4 packed words and group scales) is plain tensors; they
are saved in one file (`torch.save`) per (GGUF file, kernel, kernel cache version) and read back with
`torch.load(mmap=True)`, so a warm load neither dequantizes the GGUF nor quantizes again, and the weights it maps
are file pages the OS may share and drop. fbgemm's packed int8 weights are not plain tensors (their pickled state is
the unpacked int8 tensor), so they are re-packed from the mapped int8 on a warm load.

A cache belongs to its GGUF by a fingerprint: the file's size, its modification time (ns) and the sha256 of 17 1-MiB
samples (the first, the last and 15 evenly spaced; the whole file when it is smaller than that). A cache whose
fingerprint or version does not match is never used: the file name holds both, a mismatch finds no file and the
weights are prepared again and saved; the old cache of the same GGUF path is deleted then. An unreadable cache file
is rebuilt too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

SAMPLE_BYTES = 1 << 20
SAMPLES = 17


def fingerprint(path: Path) -> str:
    """A cheap stable fingerprint of a file (see the module docstring): hex, 32 chars."""
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as fh:
        if st.st_size <= SAMPLE_BYTES * SAMPLES:
            h.update(fh.read())
        else:
            last = st.st_size - SAMPLE_BYTES
            for i in range(SAMPLES):
                fh.seek(last * i // (SAMPLES - 1))
                h.update(fh.read(SAMPLE_BYTES))
    return h.hexdigest()[:32]


class PreparedCache:
    """Prepared weights of one GGUF for one kernel: `get(key, make, kernel)` returns the cached one (restored by
    `kernel.restore(state)`) or `make()`'s, whose `kernel.state(prepared)` is saved by `save()`.

    `hit` is True when a matching cache file was found and read."""

    def __init__(self, cache_dir: Path, gguf: Path, kernel_tag: str):
        gguf = Path(gguf).resolve()
        self.prefix = hashlib.sha256(str(gguf).encode()).hexdigest()[:12]
        self.path = Path(cache_dir) / f"{self.prefix}-{fingerprint(gguf)}-{kernel_tag}.pt"
        self._loaded: dict[str, Any] = {}
        self._new: dict[str, Any] = {}
        self._made: dict[str, tuple[Any, Any]] = {}  # key -> (prepared, kernel), to adopt the mapped copy after saving
        self.hit = False
        if self.path.is_file():
            try:
                self._loaded = torch.load(self.path, mmap=True, weights_only=True)
                self.hit = True
            except Exception:  # truncated or from another torch: prepared again below, then rewritten
                self._loaded = {}

    def get(self, key: str, make: Callable[[], Any], kernel: Any) -> Any:
        if key in self._loaded:
            return kernel.restore(self._loaded[key])
        prepared = make()
        self._new[key] = kernel.state(prepared)
        self._made[key] = (prepared, kernel)
        return prepared

    def save(self) -> None:
        """Write what was prepared in this load (nothing when everything came from the cache), atomically, and
        delete older caches of the same GGUF path; then the prepared weights take the file's mapped tensors in place
        of their own (`kernel.adopt`), so a cold load ends holding what a warm one does. A cache directory that
        cannot be written is skipped: the cache only saves time."""
        if not self._new:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            torch.save({**self._loaded, **self._new}, tmp)
            os.replace(tmp, self.path)
            for old in self.path.parent.glob(f"{self.prefix}-*.pt"):
                if old != self.path and old.name.split("-")[2:] == self.path.name.split("-")[2:]:
                    old.unlink(missing_ok=True)
            mapped = torch.load(self.path, mmap=True, weights_only=True)
        except OSError:
            mapped = {}
        for key, (prepared, kernel) in self._made.items():
            if key in mapped:
                kernel.adopt(prepared, mapped[key])
        self._new, self._made = {}, {}


def cached(cache: PreparedCache | None, key: str, make: Callable[[], Any], kernel: Any) -> Any:
    """`make()`, through `cache` when there is one and `kernel` can save what it prepares (`cacheable`)."""
    if cache is None or not getattr(kernel, "cacheable", False):
        return make()
    return cache.get(key, make, kernel)
