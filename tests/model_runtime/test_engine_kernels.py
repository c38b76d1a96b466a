"""CPU int8/int4 expert kernels against `reference`: one group of experts, a random MoE model, the embedded model.

Bounds (measured values in brackets). Quantized kernels also run the attention projections and the output head
(int8 for both kernels); top-1 agreement over a prefill batch counts early, high-entropy positions where the
first two tokens are near-ties, so KL is the main criterion.
- one expert group, relative L2 error of the output: int8 (per-row scales, activations 7-bit per call with
  outlier channels in float) < 0.03 [~0.01]; int4 (groups of 32, bfloat16 activations) < 0.15 [~0.07].
- a random olmoe-shaped model (random routers flip experts on small errors, so it is noisier than trained
  weights), prefill / decode: int8 mean KL < 0.02 [0.007 / 0.004], top-1 >= 0.85 [0.95 / 1.0];
  int4 mean KL < 0.3 [0.06 / 0.07], top-1 >= 0.65 [0.83 / 0.94].
- the embedded Gemma 3 270M (weights already 4-6 bit, so int4 re-quantizes quantized weights), prefill / decode:
  int8 mean KL < 0.05 [0.019 / 0.003], top-1 >= 0.7 [0.81 / 1.0];
  int4 mean KL < 0.4 [0.15 / 0.04], top-1 >= 0.65 [0.81 / 1.0].
"""

from __future__ import annotations

import pytest
import torch

from model_runtime.engine.kernels import ExpertWeights, UnknownKernelError, available_kernels, get_kernel
from model_runtime.engine.loader import load_transformer
from tests.model_runtime.gguf_fixtures import embedded_transformer, kl_per_position, random_gguf

GROUP_BOUND = {"cpu-int8": 0.03, "cpu-int4": 0.15}
RANDOM_BOUND = {"cpu-int8": (0.02, 0.85), "cpu-int4": (0.3, 0.65)}
EMBEDDED_BOUND = {"cpu-int8": (0.05, 0.7), "cpu-int4": (0.4, 0.65)}


def test_registry():
    assert {"reference", "cpu-int8", "cpu-int4", "cpu"} <= set(available_kernels())
    assert get_kernel("cpu").name == "cpu-int8"
    with pytest.raises(UnknownKernelError, match="unknown expert kernel 'cuda-int9'; available: .*reference"):
        get_kernel("cuda-int9")


@pytest.mark.parametrize("kernel", ["cpu-int8", "cpu-int4"])
@pytest.mark.parametrize("tokens", [1, 48])  # decode and a prefill batch
def test_expert_group_matches_reference(kernel, tokens):
    g = torch.Generator().manual_seed(tokens)
    e, f, d = 8, 96, 128
    w = ExpertWeights(torch.randn(e, f, d, generator=g) / d ** 0.5, torch.randn(e, f, d, generator=g) / d ** 0.5,
                      torch.randn(e, d, f, generator=g) / f ** 0.5)
    x = torch.randn(tokens, d, generator=g)
    ids = torch.randint(0, e, (tokens, 2), generator=g)
    ids[0, 1] = -1  # an empty slot
    wts = torch.rand(tokens, 2, generator=g)
    ref_k, k = get_kernel("reference"), get_kernel(kernel)
    want = ref_k.forward(ref_k.prepare(w), x, ids, wts)
    got = k.forward(k.prepare(w), x, ids, wts)
    err = float((got - want).norm() / want.norm())
    assert err < GROUP_BOUND[kernel], err


_REF_RUNS: dict = {}


def _run(model, prompt, n_decode):
    """Logits of one prefill batch (all positions) and of n_decode single-token steps after it (teacher-forced)."""
    cache = model.new_cache(len(prompt) + n_decode)
    prefill = model.forward(prompt, cache, all_logits=True)
    decode = torch.stack([model.forward([tok], cache)[-1] for tok in prompt[1:n_decode + 1]])
    return prefill, decode


def _compare(ref_model, model, prompt, n_decode=16):
    """KL and top-1 agreement with the reference, for the prefill batch and for the decode steps."""
    key = (id(ref_model), tuple(prompt), n_decode)
    if key not in _REF_RUNS:
        _REF_RUNS[key] = _run(ref_model, prompt, n_decode)
    out = {}
    for name, x, y in zip(("prefill", "decode"), _REF_RUNS[key], _run(model, prompt, n_decode)):
        out[name] = (float(kl_per_position(x, y).mean()), float((x.argmax(-1) == y.argmax(-1)).float().mean()))
    return out


@pytest.mark.parametrize("kernel", ["cpu-int8", "cpu-int4"])
def test_random_moe_model_matches_reference(kernel, tmp_path):
    path = random_gguf(tmp_path, "olmoe", d_model=128, head_dim=32, ffn=64)
    ref, _ = load_transformer(path, "reference")
    res = _compare(ref, ref.with_kernel(kernel), [256] + list(range(60, 100)))
    kl_max, top1_min = RANDOM_BOUND[kernel]
    for shape, (kl, top1) in res.items():
        assert kl < kl_max and top1 >= top1_min, (kernel, shape, kl, top1)


@pytest.mark.parametrize("kernel", ["cpu-int8", "cpu-int4"])
def test_embedded_model_matches_reference(kernel):
    ref = embedded_transformer("reference")
    from llama_cpp import Llama
    from model_runtime.registry import embedded_model_path

    tok = Llama(model_path=str(embedded_model_path()), vocab_only=True, verbose=False)
    prompt = tok.tokenize(b"Mixture-of-experts language models send every token to a few expert networks, "
                          b"which keeps the compute per token small.", add_bos=True)
    tok.close()
    res = _compare(ref, embedded_transformer(kernel), prompt)
    print(kernel, res)
    kl_max, top1_min = EMBEDDED_BOUND[kernel]
    for shape, (kl, top1) in res.items():
        assert kl < kl_max and top1 >= top1_min, (kernel, shape, kl, top1)
