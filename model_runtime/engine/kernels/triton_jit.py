"""The Triton programs behind the ``cuda-int8`` and ``cuda-int4`` expert kernels.

Importing this module imports Triton, so only ``triton_kernels`` imports it, lazily, when a Triton kernel is first
prepared. On a machine without CUDA the programs run under Triton's interpreter (``TRITON_INTERPRET=1``, set before
this module is imported), on CPU tensors: that is how the tests check them.

Weight layout (made by ``triton_kernels.quantize_weight``): a projection ``W [E, N, K]`` (``N`` output rows, ``K``
the reduction dimension, contiguous) is stored as

- int8: ``q [E, N, Kp]`` int8, value ``q * scale``;
- int4: ``q [E, N, Kp // 2]`` uint8, two values per byte along ``K`` (even ``k`` in the low nibble, odd ``k`` in the
  high nibble), each stored as ``v + 8`` for ``v`` in ``[-8, 7]``, value ``v * scale``;

with ``scale [E, N, Kp // GROUP]`` float32, one per group of ``GROUP`` consecutive ``k``, and ``Kp`` a multiple of
``GROUP``. ``BLOCK_K`` divides ``GROUP``, so one block of ``k`` has one scale per row: the program multiplies the
block's integer dot product by that scale (dequantizing inside the GEMM, never materializing float weights).

Two kinds of programs:

- prefill (grouped GEMM over tokens sorted per expert, see ``moe_align_block_size``): one program per
  (block of ``BLOCK_M`` sorted token-expert pairs, block of ``BLOCK_N`` outputs); every block holds pairs of one
  expert, so a program streams that expert's weight tile once for ``BLOCK_M`` tokens;
- decode (no sorting): one program per (token-expert pair, block of ``BLOCK_N`` outputs), a matrix-vector product.

Both compute ``h = act(x Wg^T) * (x Wu^T)`` (gate and up fused with the activation, written per pair) and then
``y = w_routed * (h Wd^T)`` (written per pair; the host sums a token's ``K`` pairs). An expert's own width ``f_e``
(heterogeneous widths inside a group, stored zero-padded to the group's widest) bounds both: gate/up programs past
``f_e`` exit at once, the down GEMM's reduction stops at ``f_e``.
"""

from __future__ import annotations

from model_runtime.engine.kernels import triton_kernels as _host

if not _host.JIT_IMPORT_ALLOWED:
    # The kernels package imports every ``triton_*`` module to let it register (and ignores ImportError). This one
    # is imported only by ``triton_kernels``, when a kernel is first used: on a machine without CUDA, Triton must be
    # put in interpreter mode before these programs are defined, and importing Triton early costs time for nothing.
    raise ImportError("model_runtime.engine.kernels.triton_jit is imported by triton_kernels when first needed")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402


@triton.jit
def _activation(x, ACT: tl.constexpr):
    """ACT 0: silu; ACT 1: gelu with the tanh approximation (tanh(z) = 2 sigmoid(2z) - 1)."""
    if ACT == 0:
        return x * tl.sigmoid(x)
    else:
        inner = 0.7978845608028654 * (x + 0.044715 * x * x * x)
        return 0.5 * x * (2.0 * tl.sigmoid(2.0 * inner))


@triton.jit
def _load_q(row_ptr, k_idx, mask, BITS: tl.constexpr):
    """Signed integer weights as float32 from ``row_ptr`` (pointers to each element's row start) at column ``k_idx``."""
    if BITS == 8:
        q = tl.load(row_ptr + k_idx, mask=mask, other=0)
        return q.to(tl.float32)
    else:
        packed = tl.load(row_ptr + k_idx // 2, mask=mask, other=0x88).to(tl.int32)
        nibble = (packed >> ((k_idx % 2) * 4)) & 0xF
        return nibble.to(tl.float32) - 8.0


# ---------------------------------------------------------------------------------------------------- prefill


@triton.jit
def moe_gate_up_prefill_kernel(
    x_ptr, wg_ptr, wu_ptr, sg_ptr, su_ptr, h_ptr,
    sorted_ids_ptr, block_expert_ptr, num_padded_ptr, widths_ptr,
    num_pairs, D, K_PAD,
    stride_xm, stride_we, stride_wn, stride_se, stride_sn, stride_hm,
    TOP_K: tl.constexpr, GROUP: tl.constexpr, BITS: tl.constexpr, ACT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    num_padded = tl.load(num_padded_ptr)
    if pid_m * BLOCK_M >= num_padded:
        return
    e = tl.load(block_expert_ptr + pid_m).to(tl.int64)
    if e < 0:
        return
    f_e = tl.load(widths_ptr + e)
    if pid_n * BLOCK_N >= f_e:
        return  # past this expert's width: h stays zero there

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    pair = tl.load(sorted_ids_ptr + offs_m).to(tl.int64)
    m_mask = pair < num_pairs
    token = pair // TOP_K
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < f_e

    a_rows = x_ptr + token[:, None] * stride_xm
    g_rows = wg_ptr + e * stride_we + offs_n[None, :].to(tl.int64) * stride_wn
    u_rows = wu_ptr + e * stride_we + offs_n[None, :].to(tl.int64) * stride_wn
    sg_row = sg_ptr + e * stride_se + offs_n.to(tl.int64) * stride_sn
    su_row = su_ptr + e * stride_se + offs_n.to(tl.int64) * stride_sn

    acc_g = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_u = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K_PAD, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(a_rows + offs_k[None, :], mask=m_mask[:, None] & (offs_k[None, :] < D), other=0.0)
        w_mask = n_mask[None, :]
        qg = _load_q(g_rows, offs_k[:, None], w_mask, BITS).to(a.dtype)  # [BLOCK_K, BLOCK_N]
        qu = _load_q(u_rows, offs_k[:, None], w_mask, BITS).to(a.dtype)
        group = k0 // GROUP
        s_g = tl.load(sg_row + group, mask=n_mask, other=0.0)
        s_u = tl.load(su_row + group, mask=n_mask, other=0.0)
        acc_g += tl.dot(a, qg) * s_g[None, :]
        acc_u += tl.dot(a, qu) * s_u[None, :]

    h = _activation(acc_g, ACT) * acc_u
    h_ptrs = h_ptr + pair[:, None] * stride_hm + offs_n[None, :]
    tl.store(h_ptrs, h.to(h_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


@triton.jit
def moe_down_prefill_kernel(
    h_ptr, wd_ptr, sd_ptr, out_ptr, topk_w_ptr,
    sorted_ids_ptr, block_expert_ptr, num_padded_ptr, widths_ptr,
    num_pairs, D,
    stride_hm, stride_we, stride_wn, stride_se, stride_sn, stride_om,
    GROUP: tl.constexpr, BITS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    num_padded = tl.load(num_padded_ptr)
    if pid_m * BLOCK_M >= num_padded:
        return
    e = tl.load(block_expert_ptr + pid_m).to(tl.int64)
    if e < 0:
        return
    f_e = tl.load(widths_ptr + e)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    pair = tl.load(sorted_ids_ptr + offs_m).to(tl.int64)
    m_mask = pair < num_pairs
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < D

    a_rows = h_ptr + pair[:, None] * stride_hm
    w_rows = wd_ptr + e * stride_we + offs_n[None, :].to(tl.int64) * stride_wn
    s_row = sd_ptr + e * stride_se + offs_n.to(tl.int64) * stride_sn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, f_e, BLOCK_K):  # h is zero from f_e on, and so are the padded weights
        offs_k = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(a_rows + offs_k[None, :], mask=m_mask[:, None], other=0.0)
        q = _load_q(w_rows, offs_k[:, None], n_mask[None, :], BITS).to(a.dtype)
        s = tl.load(s_row + k0 // GROUP, mask=n_mask, other=0.0)
        acc += tl.dot(a, q) * s[None, :]

    routed = tl.load(topk_w_ptr + pair, mask=m_mask, other=0.0).to(tl.float32)
    acc = acc * routed[:, None]
    out_ptrs = out_ptr + pair[:, None] * stride_om + offs_n[None, :]
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


# ---------------------------------------------------------------------------------------------------- decode


@triton.jit
def moe_gate_up_decode_kernel(
    x_ptr, wg_ptr, wu_ptr, sg_ptr, su_ptr, h_ptr, topk_ids_ptr, widths_ptr,
    D, K_PAD,
    stride_xm, stride_we, stride_wn, stride_se, stride_sn, stride_hm,
    TOP_K: tl.constexpr, GROUP: tl.constexpr, BITS: tl.constexpr, ACT: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pair = tl.program_id(0).to(tl.int64)
    pid_n = tl.program_id(1)
    e = tl.load(topk_ids_ptr + pair).to(tl.int64)
    if e < 0:
        return  # routed to no expert: h stays zero, and so does its output
    f_e = tl.load(widths_ptr + e)
    if pid_n * BLOCK_N >= f_e:
        return
    token = pair // TOP_K
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < f_e

    g_rows = wg_ptr + e * stride_we + offs_n[:, None].to(tl.int64) * stride_wn
    u_rows = wu_ptr + e * stride_we + offs_n[:, None].to(tl.int64) * stride_wn
    sg_row = sg_ptr + e * stride_se + offs_n.to(tl.int64) * stride_sn
    su_row = su_ptr + e * stride_se + offs_n.to(tl.int64) * stride_sn

    acc_g = tl.zeros((BLOCK_N,), dtype=tl.float32)
    acc_u = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for k0 in range(0, K_PAD, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(x_ptr + token * stride_xm + offs_k, mask=offs_k < D, other=0.0).to(tl.float32)
        qg = _load_q(g_rows, offs_k[None, :], n_mask[:, None], BITS)  # [BLOCK_N, BLOCK_K]
        qu = _load_q(u_rows, offs_k[None, :], n_mask[:, None], BITS)
        group = k0 // GROUP
        s_g = tl.load(sg_row + group, mask=n_mask, other=0.0)
        s_u = tl.load(su_row + group, mask=n_mask, other=0.0)
        acc_g += tl.sum(qg * a[None, :], axis=1) * s_g
        acc_u += tl.sum(qu * a[None, :], axis=1) * s_u

    h = _activation(acc_g, ACT) * acc_u
    tl.store(h_ptr + pair * stride_hm + offs_n, h.to(h_ptr.dtype.element_ty), mask=n_mask)


@triton.jit
def moe_down_decode_kernel(
    h_ptr, wd_ptr, sd_ptr, out_ptr, topk_ids_ptr, topk_w_ptr, widths_ptr,
    D,
    stride_hm, stride_we, stride_wn, stride_se, stride_sn, stride_om,
    GROUP: tl.constexpr, BITS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pair = tl.program_id(0).to(tl.int64)
    pid_n = tl.program_id(1)
    e = tl.load(topk_ids_ptr + pair).to(tl.int64)
    if e < 0:
        return
    f_e = tl.load(widths_ptr + e)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < D

    w_rows = wd_ptr + e * stride_we + offs_n[:, None].to(tl.int64) * stride_wn
    s_row = sd_ptr + e * stride_se + offs_n.to(tl.int64) * stride_sn

    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for k0 in range(0, f_e, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(h_ptr + pair * stride_hm + offs_k).to(tl.float32)
        q = _load_q(w_rows, offs_k[None, :], n_mask[:, None], BITS)
        s = tl.load(s_row + k0 // GROUP, mask=n_mask, other=0.0)
        acc += tl.sum(q * a[None, :], axis=1) * s

    routed = tl.load(topk_w_ptr + pair).to(tl.float32)
    tl.store(out_ptr + pair * stride_om + offs_n, (acc * routed).to(out_ptr.dtype.element_ty), mask=n_mask)
