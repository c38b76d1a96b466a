"""The prepared-weight cache: written on the first load, used on the next, rebuilt when its GGUF changes."""

from __future__ import annotations

import os

import pytest
import torch

from model_runtime.engine.kernels import cpu
from model_runtime.engine.loader import load_model
from tests.model_runtime.gguf_fixtures import random_gguf

TOKENS = [1, 5, 9, 3, 7, 2]


def _logits(model) -> torch.Tensor:
    return model.forward(TOKENS, model.new_cache(64), all_logits=True)


def _load(path, kernel, cache_dir):
    model, f = load_model(path, kernel, cache_dir=cache_dir)
    f.close()
    return model


@pytest.mark.parametrize("kernel", ["cpu-int8", "cpu-int4"])
def test_second_load_comes_from_the_cache_and_computes_the_same(tmp_path, kernel):
    path = random_gguf(tmp_path, "qwen2moe")
    cold = _load(path, kernel, tmp_path / "cache")
    assert not cold.prepared_cache_hit
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    warm = _load(path, kernel, tmp_path / "cache")
    assert warm.prepared_cache_hit
    assert torch.equal(_logits(cold), _logits(warm))
    uncached, _ = load_model(path, kernel)  # no cache dir: prepared as before
    assert torch.equal(_logits(uncached), _logits(warm))


def test_a_changed_gguf_rebuilds_its_cache(tmp_path):
    path = random_gguf(tmp_path, "qwen2moe", seed=1)
    _load(path, "cpu-int8", tmp_path / "cache")
    (tmp_path / "other").mkdir()
    os.replace(random_gguf(tmp_path / "other", "qwen2moe", seed=2), path)  # same path, new weights
    rebuilt = _load(path, "cpu-int8", tmp_path / "cache")
    assert not rebuilt.prepared_cache_hit
    assert [p.name for p in (tmp_path / "cache").glob("*.pt")] == [rebuilt_name(tmp_path)]  # the stale one is gone
    fresh, _ = load_model(path, "cpu-int8")
    assert torch.equal(_logits(rebuilt), _logits(fresh))
    assert _load(path, "cpu-int8", tmp_path / "cache").prepared_cache_hit


def test_a_byte_changed_under_the_same_size_and_mtime_rebuilds_the_cache(tmp_path):
    path = random_gguf(tmp_path, "qwen2moe")
    _load(path, "cpu-int8", tmp_path / "cache")
    st, data = path.stat(), bytearray(path.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor's data
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not _load(path, "cpu-int8", tmp_path / "cache").prepared_cache_hit


def rebuilt_name(tmp_path) -> str:
    return max((tmp_path / "cache").glob("*.pt"), key=lambda p: p.stat().st_mtime_ns).name


def test_an_unreadable_cache_is_rebuilt(tmp_path):
    path = random_gguf(tmp_path, "qwen2moe")
    _load(path, "cpu-int8", tmp_path / "cache")
    (cached,) = (tmp_path / "cache").glob("*.pt")
    cached.write_bytes(b"not a cache")
    model = _load(path, "cpu-int8", tmp_path / "cache")
    assert not model.prepared_cache_hit
    assert _load(path, "cpu-int8", tmp_path / "cache").prepared_cache_hit


def test_reference_kernel_writes_no_cache(tmp_path):
    _load(random_gguf(tmp_path, "qwen2moe"), "reference", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_tall_int8_weight_packed_in_row_blocks_computes_the_same(monkeypatch):
    w, x = torch.randn(100, 48), torch.randn(3, 48)
    whole = cpu.Int8Linear()(cpu.Int8Linear().prepare(w), x)
    monkeypatch.setattr(cpu, "PACK_ROWS", 16)
    blocks = cpu.Int8Linear().prepare(w)
    assert isinstance(blocks.packed, list) and len(blocks.packed) == 7
    assert torch.equal(cpu.Int8Linear()(blocks, x), whole)
