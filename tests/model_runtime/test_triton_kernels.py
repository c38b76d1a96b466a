"""The Triton expert kernels (``cuda-int8``, ``cuda-int4``) against the ``reference`` kernel.

Without a GPU the Triton programs run on CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1``): the same
programs, indexing, masking and in-kernel dequantization, executed with numpy. Shapes are tiny because the
interpreter is slow. Tests marked ``gpu`` run the compiled kernels on a CUDA device and skip without one.

Two comparisons per case:
- against ``reference`` on the weights the kernel actually holds (dequantized): only float rounding differs, so the
  tolerance is tight (this is what checks the kernels);
- against ``reference`` on the original float weights: the quantization error, bounded loosely (int8 with groups of
  16: relative error under 2%; int4: under 20%) to catch a wrong scale or nibble order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():  # before anything imports triton: its programs can only be interpreted here
    os.environ.setdefault("TRITON_INTERPRET", "1")

from model_runtime.engine.kernels import ExpertWeights, available_kernels, get_kernel  # noqa: E402
from model_runtime.engine.kernels.triton_kernels import (  # noqa: E402
    GPUUnavailableError,
    TritonExpertKernel,
    dequantize_weight,
    moe_align_block_size,
    quantize_weight,
    triton_available,
)

needs_triton = pytest.mark.skipif(not triton_available(), reason="triton is not installed (pip install triton)")
HAS_CUDA = torch.cuda.is_available()
GROUP = 16
BOUND = {8: 0.02, 4: 0.2}


def make_group(e: int, f: int, d: int, activation: str = "silu", seed: int = 0) -> ExpertWeights:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) / s[-1] ** 0.5  # noqa: E731
    return ExpertWeights(gate=r(e, f, d), up=r(e, f, d), down=r(e, d, f), activation=activation)


def make_routing(t: int, k: int, experts: list[int], seed: int = 0, none_every: int = 5):
    """Top-k ids drawn (distinct per token) from ``experts`` only, with every ``none_every``-th slot set to -1."""
    g = torch.Generator().manual_seed(seed)
    pool = torch.tensor(experts)
    ids = torch.stack([pool[torch.randperm(len(experts), generator=g)[:k]] for _ in range(t)])
    flat = ids.reshape(-1)
    flat[::none_every] = -1
    w = torch.rand(t, k, generator=g) + 0.1
    return ids, w


def reference(w: ExpertWeights, x, ids, weights) -> torch.Tensor:
    ref = get_kernel("reference")
    return ref.forward(ref.prepare(w), x, ids, weights)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12))


# ---------------------------------------------------------------------------------------------------- host side


@pytest.mark.parametrize("bits", [8, 4])
def test_quantization_round_trip_is_within_half_a_step(bits):
    w = torch.randn(3, 5, 40)
    q, s = quantize_weight(w, bits, GROUP)
    assert q.shape == (3, 5, 48 if bits == 8 else 24) and s.shape == (3, 5, 3)
    deq = dequantize_weight(q, s, bits, GROUP)
    assert deq.shape == (3, 5, 48)
    assert torch.all(deq[..., 40:] == 0)
    step = s.repeat_interleave(GROUP, dim=-1)[..., :40]
    assert torch.all((deq[..., :40] - w).abs() <= step / 2 + 1e-6)


def test_int4_packing_order():
    # one row, one group of 4; scale = max|w| / 7 = 8/7, so the values are round(w / scale) = -7, 6, 0, -1,
    # stored as v + 8 = 1, 14, 8, 7, two per byte with the even k in the low nibble
    w = torch.tensor([[[-8.0, 7.0, 0.0, -1.0]]])
    q, s = quantize_weight(w, 4, 4)
    assert s.item() == pytest.approx(8 / 7)
    assert q.dtype == torch.uint8 and q.tolist() == [[[1 | 14 << 4, 8 | 7 << 4]]]
    assert dequantize_weight(q, s, 4, 4).flatten().tolist() == pytest.approx([-8.0, 48 / 7, 0.0, -8 / 7])


def test_align_block_size_sorts_and_pads_per_expert():
    e, bm = 6, 4
    ids = torch.tensor([[0, 2], [2, -1], [5, 0], [0, 2], [2, 0], [-1, -1], [0, 5]])
    sorted_ids, block_expert, num_padded = moe_align_block_size(ids, e, bm)
    flat = ids.reshape(-1)
    pairs = flat.numel()
    counts = torch.bincount(flat[flat >= 0], minlength=e)
    expected_padded = int(((counts + bm - 1) // bm * bm).sum())
    assert int(num_padded.item()) == expected_padded
    assert sorted_ids.numel() % bm == 0 and block_expert.numel() == sorted_ids.numel() // bm
    used = sorted_ids[:expected_padded].view(-1, bm)
    for b in range(used.shape[0]):
        ex = int(block_expert[b])
        members = [int(p) for p in used[b] if p < pairs]
        assert members, "a block with no pair"
        assert all(int(flat[p]) == ex for p in members)
    valid = sorted_ids[sorted_ids < pairs]
    assert sorted(valid.tolist()) == [p for p in range(pairs) if flat[p] >= 0]  # each routed pair exactly once
    assert torch.all(sorted_ids[expected_padded:] == pairs)
    assert torch.all(block_expert[expected_padded // bm:] == -1)
    assert set(block_expert[: expected_padded // bm].tolist()) == {0, 2, 5}  # experts 1, 3, 4 get no block


def test_align_block_size_with_no_routed_pair():
    sorted_ids, block_expert, num_padded = moe_align_block_size(torch.full((3, 2), -1), 4, 16)
    assert int(num_padded.item()) == 0
    assert torch.all(block_expert == -1) and torch.all(sorted_ids == 6)


def test_registered_without_importing_triton():
    code = ("import sys; import model_runtime.engine.kernels as k; "
            "assert 'cuda-int8' in k.available_kernels() and 'cuda-int4' in k.available_kernels(); "
            "assert 'triton' not in sys.modules, 'triton imported eagerly'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "cuda-int8" in available_kernels()


@pytest.mark.skipif(HAS_CUDA, reason="checks the message shown where there is no GPU")
def test_cuda_kernel_without_gpu_says_what_to_do():
    kernel = get_kernel("cuda-int4")  # building one works (the engine lists kernels by device)...
    assert kernel.device == "cuda"
    with pytest.raises(GPUUnavailableError) as err:  # ...using it says what to do
        kernel.prepare(make_group(2, 16, 16))
    assert err.value.user_facing and err.value.exit_code == 3
    assert "cpu" in str(err.value)


# ---------------------------------------------------------------------------------------------------- kernels


def _cpu_kernel(bits: int, **kw) -> TritonExpertKernel:
    return TritonExpertKernel(bits, "cpu", group_size=GROUP, **kw)


@needs_triton
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("mode", ["decode", "prefill"])
def test_kernel_matches_reference(bits, mode):
    # 6 experts; experts 1 and 4 receive no token; every 5th slot routed to no expert (-1).
    # prefill: 20 tokens, expert 0 chosen by most of them, so it spans two 16-row blocks.
    e, f, d, k = 6, 40, 24, 2
    w = make_group(e, f, d, "silu" if bits == 8 else "gelu_tanh", seed=bits)
    t = 1 if mode == "decode" else 20
    ids, rw = make_routing(t, k, [0, 2, 3, 5], seed=t)
    if mode == "prefill":
        ids[:18, 0] = 0
        ids[:18, 1] = torch.where(ids[:18, 1] == 0, torch.full_like(ids[:18, 1], 3), ids[:18, 1])
    x = torch.randn(t, d, generator=torch.Generator().manual_seed(1))
    kern = _cpu_kernel(bits, block_m=16)
    prepared = kern.prepare(w)
    y = kern.forward(prepared, x, ids, rw)
    assert y.shape == (t, d) and y.dtype == x.dtype
    exact = reference(prepared.dequantized(), x, ids, rw)
    torch.testing.assert_close(y, exact, rtol=1e-4, atol=1e-5)
    assert rel_err(y, reference(w, x, ids, rw)) < BOUND[bits]


@needs_triton
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("t", [1, 70])
def test_gpu_block_configuration_under_the_interpreter(bits, t):
    """The block sizes and group size used on a GPU (64-wide GEMM tiles, 128-long decode reduction, groups of 128,
    automatic BLOCK_M) with half-precision activations, as close to the GPU run as the interpreter gets (it cannot
    do bfloat16 dot products, so float16 stands in for the GPU's bfloat16)."""
    e, f, d, k = 4, 192, 256, 2
    w = make_group(e, f, d, seed=5)
    g = torch.Generator().manual_seed(t)
    x = torch.randn(t, d, generator=g)
    ids = torch.randint(0, e, (t, k), generator=g)
    ids[:, 1] = (ids[:, 0] + 1) % e
    ids[::9, 1] = -1
    rw = torch.rand(t, k, generator=g)
    kern = TritonExpertKernel(bits, "cpu", group_size=128, compute_dtype=torch.float16, **TritonExpertKernel.GPU_BLOCKS)
    p = kern.prepare(w)
    y = kern.forward(p, x, ids, rw)
    assert rel_err(y, reference(p.dequantized(), x, ids, rw)) < 2e-3  # float16 activations and h


@needs_triton
@pytest.mark.parametrize("bits", [8, 4])
def test_decode_and_prefill_paths_agree(bits):
    e, f, d, k = 4, 24, 32, 2
    w = make_group(e, f, d, seed=3)
    ids, rw = make_routing(3, k, [0, 1, 3], seed=3)
    x = torch.randn(3, d)
    decode = _cpu_kernel(bits, decode_max_tokens=8)
    prefill = _cpu_kernel(bits, decode_max_tokens=0)
    p = decode.prepare(w)
    torch.testing.assert_close(decode.forward(p, x, ids, rw), prefill.forward(p, x, ids, rw), rtol=1e-4, atol=1e-5)


@needs_triton
@pytest.mark.parametrize("mode", ["decode", "prefill"])
def test_experts_of_different_widths_in_one_group(mode):
    # Expert widths 16, 40 and 24 in one group: stored zero-padded to 48, each expert's GEMMs stop at its width.
    d, k = 24, 2
    g = torch.Generator().manual_seed(7)
    widths = [16, 40, 24]
    gate = [torch.randn(fw, d, generator=g) / d ** 0.5 for fw in widths]
    up = [torch.randn(fw, d, generator=g) / d ** 0.5 for fw in widths]
    down = [torch.randn(d, fw, generator=g) / fw ** 0.5 for fw in widths]
    w = ExpertWeights(gate=gate, up=up, down=down)  # lists: one tensor per expert
    t = 1 if mode == "decode" else 9
    ids, rw = make_routing(t, k, [0, 1, 2], seed=11, none_every=4)
    x = torch.randn(t, d, generator=g)
    kern = _cpu_kernel(8)
    p = kern.prepare(w)
    assert p.widths.tolist() == widths and p.width_padded == 48
    y = kern.forward(p, x, ids, rw)
    # the truth, expert by expert at its own width
    expected = torch.zeros(t, d)
    for tt in range(t):
        for kk in range(k):
            ex = int(ids[tt, kk])
            if ex >= 0:
                h = torch.nn.functional.silu(gate[ex] @ x[tt]) * (up[ex] @ x[tt])
                expected[tt] += rw[tt, kk] * (down[ex] @ h)
    torch.testing.assert_close(y, reference(p.dequantized(), x, ids, rw), rtol=1e-4, atol=1e-5)
    assert rel_err(y, expected) < BOUND[8]


@needs_triton
def test_groups_of_different_widths_add_up():
    # Two routed groups of widths 16 and 48 (prepared separately, as the MoE layer does), ids local to each group.
    d = 32
    small, large = make_group(3, 16, d, seed=1), make_group(2, 48, d, seed=2)
    x = torch.randn(5, d)
    ids_small = torch.tensor([[0, -1], [2, 1], [-1, -1], [1, -1], [0, 2]])
    ids_large = torch.tensor([[-1, 1], [-1, -1], [0, 1], [-1, 0], [-1, -1]])
    rw = torch.rand(5, 2)
    kern = _cpu_kernel(4)
    ps, pl = kern.prepare(small), kern.prepare(large)
    y = kern.forward(ps, x, ids_small, rw) + kern.forward(pl, x, ids_large, rw)
    exact = reference(ps.dequantized(), x, ids_small, rw) + reference(pl.dequantized(), x, ids_large, rw)
    torch.testing.assert_close(y, exact, rtol=1e-4, atol=1e-5)


@needs_triton
def test_no_routed_token_gives_zeros():
    w = make_group(3, 16, 16)
    kern = _cpu_kernel(8)
    p = kern.prepare(w)
    for t in (1, 6):
        y = kern.forward(p, torch.randn(t, 16), torch.full((t, 2), -1), torch.ones(t, 2))
        assert torch.all(y == 0)
    assert kern.forward(p, torch.randn(0, 16), torch.zeros(0, 2, dtype=torch.long), torch.ones(0, 2)).shape == (0, 16)


# ---------------------------------------------------------------------------------------------------- on a GPU


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@needs_triton
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("t", [1, 64])
def test_compiled_kernel_matches_reference_on_gpu(bits, t):
    e, f, d, k = 16, 384, 512, 4
    w = make_group(e, f, d, seed=bits)
    ids, rw = make_routing(t, k, list(range(0, e, 2)) + [1], seed=t, none_every=7)
    x = torch.randn(t, d)
    kern = get_kernel(f"cuda-int{bits}")
    p = kern.prepare(w)
    y = kern.forward(p, x.cuda(), ids.cuda(), rw.cuda())
    exact = reference(p.dequantized(), x, ids, rw)
    assert rel_err(y.cpu(), exact) < 1e-2  # bfloat16 activations


# ---------------------------------------------------------------------------------------------------- benchmark script

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_bench.py"


def test_benchmark_knows_the_cards():
    sys.path.insert(0, str(BENCH.parent))
    try:
        import gpu_bench
    finally:
        sys.path.remove(str(BENCH.parent))
    assert gpu_bench.card_peaks("NVIDIA H200")[0] == "H200"
    assert gpu_bench.card_peaks("NVIDIA H100 80GB HBM3")[:2] == ("H100 SXM", 989.0)
    assert gpu_bench.card_peaks("NVIDIA H100 PCIe")[0] == "H100 PCIe"
    assert gpu_bench.card_peaks("Some Future GPU") == ("Some Future GPU", None, None)


@pytest.mark.skipif(HAS_CUDA, reason="checks the behaviour without a GPU")
def test_benchmark_without_gpu_exits_cleanly():
    out = subprocess.run([sys.executable, str(BENCH)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "nothing measured" in out.stdout


@needs_triton
def test_benchmark_dry_run_on_cpu(tmp_path):
    """Every code path of the GPU benchmark, at tiny shapes on the CPU (Triton interpreted): the numbers mean nothing,
    but the kernels' outputs are checked against the bf16 loop, and every placement decodes."""
    report = tmp_path / "bench.json"
    out = subprocess.run([sys.executable, str(BENCH), "--self-check", "--json", str(report)], capture_output=True,
                         text=True, timeout=600, env={**os.environ, "TRITON_INTERPRET": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(report.read_text())
    methods = {r["method"] for r in data["kernels"]}
    assert methods == {"torch-bf16-loop", "dequant-int8-loop", "triton-int8", "triton-int4"}
    for r in data["kernels"]:
        assert "error" not in r, r
        bound = 0.2 if r["method"] == "triton-int4" else 0.02
        assert r["rel_err_vs_bf16"] < bound, r
    placements = [r["placement"] for r in data["model"]]
    assert placements == ["all-cpu", "all-gpu", "frequency 10%", "frequency 25%", "frequency 50%"]
    for r in data["model"]:
        assert "error" not in r and r["decode_tok_s"] > 0, r
    shares = [r["gpu_share_of_routing"] for r in data["model"]]
    assert shares[0] == 0.0 and shares[1] == 1.0 and shares[2] <= shares[3] <= shares[4]
    assert "### Whole model" in out.stdout
