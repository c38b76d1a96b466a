"""CPU/GPU expert placement: routing profiles, placement plans, and a model split between two expert kernels.

What is simulated without a GPU: the "GPU side" of a placed layer is an expert kernel whose device is the CPU
(the ``reference`` kernel, or the Triton ``cuda-int8`` programs under Triton's interpreter). The split itself (which
pairs each side computes, the ``-1`` masking, the sums, the shared expert on the GPU side) is the code that runs on a
GPU; what is not exercised here is the CUDA asynchrony (streams, pinned copies), which the ``gpu`` tests cover on a
machine with one.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from model_runtime.engine.hmoe import HMoEParams, write_hmoe_gguf  # noqa: E402
from model_runtime.engine.kernels import ExpertWeights, get_kernel  # noqa: E402
from model_runtime.engine.kernels.triton_kernels import TritonExpertKernel, triton_available  # noqa: E402
from model_runtime.engine.loader import load_transformer  # noqa: E402
from model_runtime.engine.placement import (  # noqa: E402
    HybridExperts,
    Placement,
    PlacedMoELayer,
    ProfileRecorder,
    RoutingProfile,
    attach_recorder,
    calibrate,
    expert_nbytes,
    model_expert_bytes,
    load_placed_llm,
    place_model,
    plan_placement,
    replan_llm,
)
from model_runtime.errors import ModelRuntimeError  # noqa: E402
from model_runtime.settings import ModelSettings  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
needs_triton = pytest.mark.skipif(not triton_available(), reason="triton is not installed (pip install triton)")

GROUPS = [(6, 16), (4, 32)]  # (experts, width) of the two routed groups: a heterogeneous MoE
TOP_K = 3


@pytest.fixture(scope="module")
def hmoe_path(tmp_path_factory) -> str:
    """A small random ``moesearch-hmoe`` model: 2 layers, a gated shared expert, two routed groups of widths 16, 32."""
    rng = np.random.default_rng(5)
    d, nh, hd, vocab = 32, 2, 16, 320

    def w(*shape, std=None):
        return (rng.standard_normal(shape) * (std or 1 / np.sqrt(shape[-1]))).astype(np.float32)

    t = {"token_embd.weight": w(vocab, d, std=1.0), "output_norm.weight": np.ones(d, np.float32),
         "output.weight": w(vocab, d, std=6 / np.sqrt(d))}
    for i in range(2):
        p = f"blk.{i}."
        t.update({p + "attn_norm.weight": np.ones(d, np.float32), p + "ffn_norm.weight": np.ones(d, np.float32),
                  p + "attn_q.weight": w(nh * hd, d), p + "attn_k.weight": w(nh * hd, d),
                  p + "attn_v.weight": w(nh * hd, d), p + "attn_output.weight": w(d, nh * hd),
                  p + "ffn_gate_inp.weight": w(sum(n for n, _ in GROUPS), d, std=1.0),
                  p + "ffn_gate_shexps.weight": w(1, 24, d), p + "ffn_up_shexps.weight": w(1, 24, d),
                  p + "ffn_down_shexps.weight": w(1, d, 24), p + "ffn_gate_inp_shexp.weight": w(d)})
        for g, (n, f) in enumerate(GROUPS):
            t[p + f"ffn_gate_exps_g{g}.weight"] = w(n, f, d)
            t[p + f"ffn_up_exps_g{g}.weight"] = w(n, f, d)
            t[p + f"ffn_down_exps_g{g}.weight"] = w(n, d, f)
    params = HMoEParams(n_layer=2, d_model=d, n_head=nh, n_head_kv=nh, head_dim=hd, n_vocab=vocab,
                        group_counts=[n for n, _ in GROUPS], group_widths=[f for _, f in GROUPS], top_k=TOP_K,
                        shared_count=1, shared_width=24, shared_gate=True, context_length=256)
    return str(write_hmoe_gguf(tmp_path_factory.mktemp("placement") / "tiny-hmoe.gguf", params, t,
                               tokenizer=byte_tokenizer(vocab)))


def byte_tokenizer(n_vocab: int) -> dict:
    """A GPT-2 style byte-level vocabulary (256 byte tokens, BOS, EOS, two merges, unused fillers) for llama.cpp."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, n = {}, 0
    for b in range(256):
        chars[b] = chr(b) if b in keep else chr(256 + n)
        n += b not in keep
    tokens = [chars[b] for b in range(256)] + ["<|bos|>", "<|eos|>", "\u0120t", "he"]
    tokens += [f"<|unused{i}|>" for i in range(len(tokens), n_vocab)]
    types = [1] * 256 + [3, 3, 1, 1] + [5] * (n_vocab - 260)
    return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "default", "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": ["\u0120 t", "h e"],
            "tokenizer.ggml.bos_token_id": 256,
            "tokenizer.ggml.eos_token_id": 257, "tokenizer.ggml.add_bos_token": True}


def greedy(model, prompt: list[int], steps: int) -> tuple[list[int], list[torch.Tensor]]:
    cache = model.new_cache(64)
    logits = model.forward(prompt, cache)[-1]
    tokens, all_logits = [], [logits]
    for _ in range(steps):
        tokens.append(int(torch.argmax(logits)))
        logits = model.forward([tokens[-1]], cache)[-1]
        all_logits.append(logits)
    return tokens, all_logits


PROMPT = [1, 7, 12, 33, 5, 60, 2, 19]


# ---------------------------------------------------------------------------------------------------- profiles, plans


def test_profile_counts_save_and_load(tmp_path):
    rec = ProfileRecorder()
    rec.record(0, torch.tensor([[0, 2], [2, -1], [3, 2]]), 4)
    rec.record(0, torch.tensor([[1, 2]]), 4)
    rec.record("1.0", torch.tensor([[0, 1]]), 2)
    prof = rec.profile
    assert prof.counts == {"0": [1, 1, 4, 1], "1.0": [1, 1]}
    assert prof.tokens == {"0": 4, "1.0": 1}
    assert prof.frequency(0) == [0.25, 0.25, 1.0, 0.25]
    path = prof.save(tmp_path / "profiles" / "p.json")
    again = RoutingProfile.load(path)
    assert again.counts == prof.counts and again.tokens == prof.tokens
    merged = again.merge(prof)
    assert merged.counts["0"] == [2, 2, 8, 2] and merged.tokens["0"] == 8
    (tmp_path / "bad.json").write_text("{\"x\": 1}")
    with pytest.raises(ValueError, match="not valid"):
        RoutingProfile.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="calibration"):
        RoutingProfile.load(tmp_path / "missing.json")


def test_frequency_plan_puts_the_most_used_experts_on_the_gpu_within_the_budget():
    prof = RoutingProfile(counts={"0": [5, 50, 1, 20], "1": [30, 0, 40, 2]}, tokens={"0": 100, "1": 100})
    plan = plan_placement(prof, 10, 35, "frequency")
    # frequencies: 0.5 (layer 0, expert 1), 0.4 (1, 2), 0.3 (1, 0), 0.2 (0, 3), ...; room for 3 experts of 10 bytes
    assert plan.gpu_experts("0") == [1] and plan.gpu_experts("1") == [0, 2]
    assert plan.gpu_bytes == 30 and plan.gpu_bytes <= 35
    assert [e for e, d in enumerate(plan.devices["0"]) if d == "cpu"] == [0, 2, 3]
    # experts of different sizes: the big frequent one does not fit any more, smaller less frequent ones do
    sizes = {"0": [10, 10, 10, 30], "1": [10, 10, 10, 10]}
    plan = plan_placement(prof, sizes, 45, "frequency")
    assert plan.gpu_experts("0") == [0, 1] and plan.gpu_experts("1") == [0, 2]
    assert plan.gpu_bytes == 40
    assert Placement.from_json(plan.to_json()).devices == plan.devices


def test_all_gpu_and_all_cpu_plans():
    prof = RoutingProfile(counts={"0": [1, 2, 3]}, tokens={"0": 2})
    assert plan_placement(prof, 10, None, "all-gpu").gpu_experts("0") == [0, 1, 2]
    assert plan_placement(prof, 10, 10**9, "all-cpu").gpu_experts("0") == []
    with pytest.raises(ValueError, match="over the budget"):
        plan_placement(prof, 10, 25, "all-gpu")
    with pytest.raises(ValueError, match="strategy"):
        plan_placement(prof, 10, 25, "random")
    # without a profile, sizes alone say which experts exist
    assert plan_placement(None, {"0": [4, 4]}, 4, "frequency").gpu_experts("0") == [0]


def test_expert_bytes_follow_the_kernel_format():
    assert expert_nbytes(128, 256, bits=4, group_size=128) == 3 * 128 * 256 // 2 + (2 * 128 * 2 + 256 * 1) * 4
    assert expert_nbytes(128, 256, bits=8, group_size=128) > expert_nbytes(128, 256, bits=4, group_size=128)


def test_calibration_counts_every_routing_choice(hmoe_path):
    model, _ = load_transformer(hmoe_path, "reference")
    prof = calibrate(model, [PROMPT, PROMPT[:5]])
    n = sum(n for n, _ in GROUPS)
    assert set(prof.counts) == {"0", "1"}
    for key in ("0", "1"):
        assert len(prof.counts[key]) == n
        assert sum(prof.counts[key]) == (len(PROMPT) + 5) * TOP_K  # every token chose TOP_K experts
        assert prof.tokens[key] == len(PROMPT) + 5
    # the hook is gone afterwards
    assert "route" not in model.blocks[0].ffn.__dict__


# ---------------------------------------------------------------------------------------------------- split forward


def _group(e=5, f=16, d=32, seed=0) -> ExpertWeights:
    g = torch.Generator().manual_seed(seed)
    return ExpertWeights(torch.randn(e, f, d, generator=g) / d ** 0.5, torch.randn(e, f, d, generator=g) / d ** 0.5,
                         torch.randn(e, d, f, generator=g) / f ** 0.5)


@pytest.mark.parametrize("devices", [["cuda"] * 5, ["cpu"] * 5, ["cuda", "cpu", "cuda", "cpu", "cpu"]])
def test_hybrid_group_equals_one_kernel(devices):
    w = _group()
    ref = get_kernel("reference")
    x = torch.randn(7, 32)
    ids = torch.tensor([[0, 1], [2, -1], [4, 3], [1, 0], [-1, -1], [3, 2], [0, 4]])
    rw = torch.rand(7, 2)
    # "GPU" side simulated by a reference kernel on the CPU: the split logic is what is checked
    hybrid = HybridExperts(w, devices, get_kernel("reference"), get_kernel("reference"))
    torch.testing.assert_close(hybrid(x, ids, rw), ref.forward(ref.prepare(w), x, ids, rw), rtol=1e-5, atol=1e-6)


def test_half_and_half_model_gives_the_reference_tokens(hmoe_path):
    baseline, _ = load_transformer(hmoe_path, "reference")
    want, want_logits = greedy(baseline, PROMPT, 8)
    placed, _ = load_transformer(hmoe_path, "reference")
    prof = calibrate(placed, [PROMPT])
    sizes = model_expert_bytes(placed, bits=8, group_size=16)
    half = sum(sum(v) for v in sizes.values()) // 2
    plan = plan_placement(prof, sizes, half, "frequency")
    assert 0 < plan.gpu_bytes <= half and 0 < plan.gpu_fraction() < 1
    # both sides run the reference kernel, the "GPU" one on the CPU (simulated): exact same arithmetic per expert
    place_model(placed, plan, get_kernel("reference"), get_kernel("reference"))
    assert all(isinstance(b.ffn, PlacedMoELayer) for b in placed.blocks)
    assert placed.blocks[0].ffn.devices == plan.devices["0"]
    got, got_logits = greedy(placed, PROMPT, 8)
    assert got == want
    for a, b in zip(got_logits, want_logits):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@needs_triton
def test_half_and_half_with_quantized_kernels_tracks_the_reference(hmoe_path):
    """GPU side: the Triton cuda-int8 programs (interpreted on the CPU); CPU side: the engine's cpu-int8 kernel."""
    baseline, _ = load_transformer(hmoe_path, "reference")
    want, want_logits = greedy(baseline, PROMPT, 6)
    placed, _ = load_transformer(hmoe_path, "reference")
    sizes = model_expert_bytes(placed, bits=8, group_size=16)
    # no profile: the fill goes in layer order, which still puts some experts of every layer on each side
    plan = plan_placement(calibrate(placed, [PROMPT]), sizes, sum(sum(v) for v in sizes.values()) // 2, "frequency")
    place_model(placed, plan, TritonExpertKernel(8, "cpu", group_size=16), get_kernel("cpu-int8"))
    got, got_logits = greedy(placed, PROMPT, 6)
    agree = sum(a == b for a, b in zip(got, want))
    assert agree >= 5, (got, want)  # int8 weights on both sides: the same greedy tokens, at most one flip
    for a, b in zip(got_logits[:2], want_logits[:2]):
        pa, pb = torch.log_softmax(a, -1), torch.log_softmax(b, -1)
        kl = float((pb.exp() * (pb - pa)).sum())
        assert kl < 0.02


def test_replacing_devices_while_serving(hmoe_path):
    model, _ = load_transformer(hmoe_path, "reference")
    want, _ = greedy(model, PROMPT, 4)
    n = sum(n for n, _ in GROUPS)
    plan = Placement({"0": ["cpu"] * n, "1": ["cpu"] * n})
    ref = get_kernel("reference")
    place_model(model, plan, ref, ref, keep_weights=True)
    recorder = ProfileRecorder()
    detach = attach_recorder(model, recorder)  # keeps counting while serving
    greedy(model, PROMPT, 2)
    detach()
    new = plan_placement(recorder.profile, model_expert_bytes(model, 8, 16), 10**9, "frequency")
    for i, blk in enumerate(model.blocks):
        blk.ffn.replace(new.devices[str(i)])
        assert blk.ffn.devices == ["cuda"] * n
    assert greedy(model, PROMPT, 4)[0] == want


def test_settings_place_a_served_model(hmoe_path, tmp_path):
    """What `moesearch model serve --backend torch --device cuda` does, with the GPU side simulated on the CPU."""
    baseline, _ = load_transformer(hmoe_path, "reference")
    want, _ = greedy(baseline, PROMPT, 6)
    sizes = model_expert_bytes(baseline, bits=4, group_size=128)
    half_gb = sum(sum(v) for v in sizes.values()) / 2 / 2**30
    profile_path = tmp_path / "profile.json"
    settings = ModelSettings(model=hmoe_path, backend="torch", torch_device="cuda", expert_placement="frequency",
                             expert_gpu_budget_gb=half_gb, routing_profile=profile_path)
    ref = get_kernel("reference")
    llm = load_placed_llm(settings, gpu_kernel=ref, cpu_kernel=ref)
    assert profile_path.exists()  # recorded by the calibration run over the built-in text, and kept
    assert 0 < llm.placement.gpu_fraction() < 1
    assert all(isinstance(b.ffn, PlacedMoELayer) for b in llm.model.blocks)
    assert greedy(llm.model, PROMPT, 6)[0] == want
    again = load_placed_llm(settings, gpu_kernel=ref, cpu_kernel=ref)  # the saved profile gives the same plan
    assert again.placement.devices == llm.placement.devices
    # while serving: record the routing of what is served and re-plan from it
    recorder = ProfileRecorder()
    attach_recorder(again.model, recorder)
    greedy(again.model, [9, 8, 7, 6, 5, 4, 3, 2, 1] * 3, 2)
    plan = replan_llm(again, settings, recorder, gpu_kernel=ref, cpu_kernel=ref)
    assert again.placement is plan and 0 < plan.gpu_bytes <= half_gb * 2**30
    seen = sum(recorder.profile.tokens.values())
    greedy(again.model, PROMPT, 1)
    assert sum(recorder.profile.tokens.values()) > seen  # still recording after the re-plan
    assert greedy(again.model, PROMPT, 6)[0] == want
    llm.close()
    again.close()


class _SmallGPU(type(get_kernel("reference"))):
    """A "GPU" side that holds at most `limit` experts per group: running out of GPU memory cannot be caused on a
    machine without a GPU, so this kernel raises the error CUDA raises."""

    def __init__(self, limit: int):
        self.limit = limit

    def prepare(self, w):
        if w.n_experts > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().prepare(w)


def test_gpu_out_of_memory_places_fewer_experts(hmoe_path, capsys):
    baseline, _ = load_transformer(hmoe_path, "reference")
    want, _ = greedy(baseline, PROMPT, 4)
    settings = ModelSettings(model=hmoe_path, backend="torch", torch_device="cuda", expert_placement="all-gpu")
    llm = load_placed_llm(settings, gpu_kernel=_SmallGPU(limit=2), cpu_kernel=get_kernel("reference"))
    assert "GPU out of memory while placing experts; retrying with" in capsys.readouterr().err
    assert 0 < llm.placement.gpu_fraction() < 1 and llm.placement.strategy == "frequency"
    assert greedy(llm.model, PROMPT, 4)[0] == want
    llm.close()


@pytest.mark.skipif(HAS_CUDA, reason="checks the message shown where there is no GPU")
def test_cuda_device_without_gpu_says_what_to_do(hmoe_path):
    settings = ModelSettings(model=hmoe_path, backend="torch", torch_device="cuda")
    with pytest.raises(ModelRuntimeError, match="--device cpu") as err:
        load_placed_llm(settings)
    assert err.value.exit_code == 3


# ---------------------------------------------------------------------------------------------------- on a GPU


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@needs_triton
def test_half_and_half_on_a_gpu(hmoe_path):
    baseline, _ = load_transformer(hmoe_path, "reference")
    want, _ = greedy(baseline, PROMPT, 6)
    placed, _ = load_transformer(hmoe_path, "reference")
    sizes = model_expert_bytes(placed, bits=8, group_size=16)
    plan = plan_placement(calibrate(placed, [PROMPT]), sizes, sum(sum(v) for v in sizes.values()) // 2)
    place_model(placed, plan, get_kernel("cuda-int8"), get_kernel("cpu-int8"))
    got, _ = greedy(placed, PROMPT, 6)
    assert sum(a == b for a, b in zip(got, want)) >= 5
