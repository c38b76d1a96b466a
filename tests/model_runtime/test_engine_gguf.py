"""GGUF reading: dequantization bit-exact against ggml's own code, and the errors a bad or unsupported file gives."""

from __future__ import annotations

import ctypes
import os

import gguf
import numpy as np
import pytest
import torch

from model_runtime.engine.gguf_file import GGUFModelFile, dequantize, supported_types
from model_runtime.engine.loader import load_transformer
from model_runtime.errors import CorruptModelError, ModelNotFoundError, UnsupportedModelError
from tests.model_runtime.gguf_fixtures import quantized_bytes, random_gguf, random_model, write_gguf

Q = gguf.GGMLQuantizationType


def _ggml():
    import llama_cpp

    return ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))


@pytest.mark.parametrize("qtype", ["Q4_K", "Q5_K", "Q6_K", "Q5_0", "Q8_0"])
def test_dequantize_is_bit_exact_with_ggml(qtype):
    rng = np.random.default_rng(1)
    arr = (rng.standard_normal((6, 512)) * 0.05).astype(np.float32)
    data = quantized_bytes(arr, qtype, rng)
    if qtype.endswith("_K"):  # every byte random (scales, mins, high bits) except the f16 super-block scales
        nb = {"Q4_K": 144, "Q5_K": 176, "Q6_K": 210}[qtype]
        blocks = rng.integers(0, 256, size=(data.size // nb, nb), dtype=np.uint8)
        blocks[:, :nb] = blocks[:, :nb]
        for off in ([0, 2] if qtype != "Q6_K" else [208]):
            blocks[:, off:off + 2] = np.array([0.01 + 0.01 * off], np.float16).view(np.uint8)
        data = blocks.reshape(data.shape)
    data = np.ascontiguousarray(data)
    want = np.zeros(arr.size, np.float32)
    fn = getattr(_ggml(), "dequantize_row_" + qtype.lower().replace("_k", "_K"))
    fn(data.ctypes.data_as(ctypes.c_void_p), want.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(arr.size))
    got = dequantize(data, Q[qtype], arr.shape).numpy().reshape(-1)
    assert np.array_equal(got, want)


def test_float_types_round_trip():
    rng = np.random.default_rng(2)
    arr = rng.standard_normal((4, 64)).astype(np.float32)
    assert torch.equal(dequantize(arr.astype(np.float16), Q.F16, arr.shape), torch.from_numpy(
        arr.astype(np.float16).astype(np.float32)))
    bf = gguf.quants.quantize(arr, Q.BF16)
    assert torch.allclose(dequantize(bf, Q.BF16, arr.shape), torch.from_numpy(arr), rtol=1e-2, atol=1e-2)
    assert torch.equal(dequantize(arr, Q.F32, arr.shape), torch.from_numpy(arr))


def test_metadata_and_tensors(tmp_path):
    path = random_gguf(tmp_path, "qwen3moe")
    f = GGUFModelFile(path)
    assert f.arch == "qwen3moe" and f.hp("expert_count") == 8
    assert f.shape("blk.0.ffn_gate_exps.weight") == (8, 32, 64)  # experts stacked: [E, F, D]
    assert f.shape("blk.0.ffn_down_exps.weight") == (8, 64, 32)


def test_unsupported_architecture_names_the_supported_ones(tmp_path):
    meta, t = random_model("qwen3moe")
    meta = {k.replace("qwen3moe.", "llama."): v for k, v in meta.items()}
    path = write_gguf(tmp_path / "llama.gguf", "llama", meta, t)
    with pytest.raises(UnsupportedModelError, match="'llama'.*supported: gemma3, qwen2, qwen2moe, qwen3moe, olmoe"):
        load_transformer(path)


def test_unsupported_tensor_type_names_the_supported_ones(tmp_path):
    path = random_gguf(tmp_path, "olmoe", {"attn_q.": "Q4_0"})
    with pytest.raises(UnsupportedModelError) as e:
        load_transformer(path)
    assert "blk.0.attn_q.weight" in str(e.value) and "Q4_0" in str(e.value)
    assert all(t in str(e.value) for t in supported_types())


def test_shape_mismatch_names_the_tensor(tmp_path):
    meta, t = random_model("qwen2moe")
    t["blk.1.ffn_up_exps.weight"] = t["blk.1.ffn_up_exps.weight"][:, :16]  # width 16, metadata says 32
    path = write_gguf(tmp_path / "bad.gguf", "qwen2moe", meta, t)
    with pytest.raises(CorruptModelError, match=r"blk\.1\.ffn_up_exps\.weight.*\[8, 16, 64\].*\[8, 32, 64\]"):
        load_transformer(path)


def test_missing_tensor_and_missing_file(tmp_path):
    meta, t = random_model("gemma3")
    del t["blk.0.post_ffw_norm.weight"]
    path = write_gguf(tmp_path / "short.gguf", "gemma3", meta, t)
    with pytest.raises(CorruptModelError, match=r"blk\.0\.post_ffw_norm\.weight"):
        load_transformer(path)
    with pytest.raises(ModelNotFoundError):
        GGUFModelFile(tmp_path / "nope.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"GGUF" + b"\0" * 10)
    with pytest.raises(CorruptModelError):
        GGUFModelFile(tmp_path / "junk.gguf")
