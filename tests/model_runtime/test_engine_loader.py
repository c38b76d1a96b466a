"""The one loader: each tensor read once into its kernel, with transient memory bounded by about one expert.

The memory test loads, in a fresh process, a one-layer qwen3moe file made large on purpose (16 experts of
1024 x 1024, Q8_0): one expert is 12.6 MB in float32, the layer's experts 201 MB. Reading a whole stacked tensor or
a whole layer in float32 (what loading did before) puts the transient above 200 MB; the bound here is the file's
own pages (they are mapped while they are read) + 3 experts + 48 MB of allocator and library slack (measured:
72 MB of transient against a bound of 141 MB; a whole layer of experts in float32 is 201 MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from model_runtime.engine.kernels import ExpertWeights, get_kernel
from model_runtime.engine.loader import GGUFExperts, ffn_sources, load_model, load_transformer
from model_runtime.engine.gguf_file import GGUFModelFile
from model_runtime.engine.arch import config_from_gguf
from model_runtime.errors import UnsupportedModelError
from tests.model_runtime.gguf_fixtures import random_gguf

_MEASURE = r"""
import json, sys
def status():
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "VmHWM")):
            k, v = line.split(":")
            out[k] = int(v.split()[0]) * 1024
    return out
from model_runtime.engine.loader import load_transformer
import torch
before = status()
model, f = load_transformer(sys.argv[1], sys.argv[2])
after = status()
print(json.dumps({"before": before["VmRSS"], "peak": after["VmHWM"], "after": after["VmRSS"]}))
"""


@pytest.fixture(scope="module")
def big_moe(tmp_path_factory):
    return random_gguf(tmp_path_factory.mktemp("big"), "qwen3moe", {"exps": "Q8_0"}, n_layer=1, d_model=1024,
                       head_dim=64, n_head=4, n_head_kv=2, n_expert=16, ffn=1024, top_k=2)


def test_loading_peak_memory_is_bounded_by_about_one_expert(big_moe):
    # glibc's adaptive mmap threshold keeps freed multi-MB blocks in its heap at random (RSS after a load varied
    # by 50 MB between runs); a fixed threshold makes resident memory follow what the loader holds
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    r = subprocess.run([sys.executable, "-c", _MEASURE, str(big_moe), "cpu-int8"], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    expert_f32 = 3 * 1024 * 1024 * 4
    transient = m["peak"] - m["after"]
    bound = big_moe.stat().st_size + 3 * expert_f32 + 48 * 2**20
    print("transient MB", transient / 2**20, "bound MB", bound / 2**20)
    assert transient < bound, (transient / 2**20, bound / 2**20, m)
    assert transient < 16 * expert_f32  # far below the layer's experts in float32 (16 experts)


def test_experts_are_read_one_at_a_time_and_equal_the_whole_tensor(big_moe):
    f = GGUFModelFile(big_moe)
    cfg = config_from_gguf(f)
    src = ffn_sources(f, cfg, 0).routed[0]
    assert isinstance(src, GGUFExperts) and src.n_experts == 16
    whole = f.tensor("blk.0.ffn_down_exps.weight", (16, 1024, 1024))
    torch.testing.assert_close(src.expert(5)[2], whole[5], rtol=0, atol=0)


def test_embedding_rows_stay_in_their_file_type(tmp_path):
    path = random_gguf(tmp_path, "qwen3moe", {"token_embd": "Q8_0"}, d_model=64)
    model, f = load_transformer(path, "cpu-int8")
    ids = torch.tensor([3, 300, 3])
    want = f.tensor("token_embd.weight")[ids]
    torch.testing.assert_close(model.embed.lookup(ids), want, rtol=0, atol=0)
    assert model.embed.info.tensor_type.name == "Q8_0"  # looked up from the mapped Q8_0 blocks, no float copy


def test_lazy_and_float_groups_prepare_alike(tmp_path):
    path = random_gguf(tmp_path, "olmoe", d_model=64, ffn=32)
    f = GGUFModelFile(path)
    src = ffn_sources(f, config_from_gguf(f), 1).routed[0]
    dense = src.materialize()
    assert isinstance(dense, ExpertWeights)
    k = get_kernel("cpu-int8")
    x, ids, w = torch.randn(5, 64), torch.randint(0, 8, (5, 2)), torch.rand(5, 2)
    torch.testing.assert_close(k.forward(k.prepare(src), x, ids, w), k.forward(k.prepare(dense), x, ids, w))


def test_unsupported_tensor_type_names_the_supported_ones(tmp_path):
    path = random_gguf(tmp_path, "qwen3moe", {"token_embd": "Q4_0"}, d_model=64)
    with pytest.raises(UnsupportedModelError, match="Q4_0.*supported: F32, F16, BF16, Q8_0"):
        load_model(path, "cpu-int8")


def test_model_state_lives_on_the_model_device(tmp_path):
    """Norms, biases and the KV cache follow the model's device (checked on "meta": no GPU here)."""
    from model_runtime.engine.model import KVCache, Transformer

    model, _ = load_transformer(random_gguf(tmp_path, "qwen2moe"), "reference")
    on_meta = Transformer(model.cfg, model.embed, model.head, model.output_norm, model.blocks, model.kernel,
                          device="meta")
    assert on_meta.output_norm.device.type == "meta"
    assert all(b.attn_norm.device.type == "meta" and b.bqkv.device.type == "meta" for b in on_meta.blocks)
    cache = on_meta.new_cache(600)
    assert isinstance(cache, KVCache) and cache.k[0].device.type == "meta"
    cache.ensure(400)  # grows past its first 256 positions on the same device
    assert cache.k[0].shape[1] == 512 and cache.v[1].device.type == "meta"
    assert model.output_norm.device.type == "cpu"  # the original is untouched
