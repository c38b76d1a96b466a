"""Our heterogeneous MoE architecture (`moesearch-hmoe`): equal to qwen2moe when built the same, round trip, routing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_runtime.engine.arch import HMOE_ARCH
from model_runtime.engine.gguf_file import GGUFModelFile
from model_runtime.engine.hmoe import HMoEParams, save_hmoe, write_hmoe_gguf
from model_runtime.engine.kernels import ExpertWeights, get_kernel
from model_runtime.engine.llm import TorchMoELLM
from model_runtime.engine.loader import load_transformer
from model_runtime.engine.moe import MoELayer, RouterSpec
from tests.model_runtime.gguf_fixtures import qwen2moe_as_hmoe, random_model, tokenizer_metadata, write_gguf

TOKENS = [256] + list(range(40, 70))


def test_hmoe_with_one_group_equals_qwen2moe(tmp_path):
    meta, t = random_model("qwen2moe")
    q = write_gguf(tmp_path / "q.gguf", "qwen2moe", meta, t)
    h = qwen2moe_as_hmoe(meta, t, tmp_path)
    assert GGUFModelFile(h).arch == HMOE_ARCH
    mq, _ = load_transformer(q)
    mh, _ = load_transformer(h)
    lq = mq.forward(TOKENS, mq.new_cache(64), all_logits=True)
    lh = mh.forward(TOKENS, mh.new_cache(64), all_logits=True)
    assert torch.allclose(lq, lh, atol=1e-4, rtol=0)


def hetero_params() -> HMoEParams:
    return HMoEParams(n_layer=2, d_model=64, n_head=4, n_head_kv=2, head_dim=16, n_vocab=320,
                      group_counts=[4, 8], group_widths=[64, 32], top_k=3, shared_count=2, shared_width=48,
                      shared_gate=True, gating="sigmoid", norm_topk=True, qk_norm="head")


def hetero_tensors(p: HMoEParams, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    d, qd, kd = p.d_model, p.n_head * p.head_dim, p.n_head_kv * p.head_dim

    def w(*shape, std=None):
        return (rng.standard_normal(shape) * (std or 1 / np.sqrt(shape[-1]))).astype(np.float32)

    t = {"token_embd.weight": w(p.n_vocab, d, std=1.0), "output.weight": w(p.n_vocab, d, std=0.5),
         "output_norm.weight": 1 + w(d, std=0.1)}
    for i in range(p.n_layer):
        b = f"blk.{i}."
        t.update({b + "attn_norm.weight": 1 + w(d, std=0.1), b + "attn_q.weight": w(qd, d),
                  b + "attn_k.weight": w(kd, d), b + "attn_v.weight": w(kd, d), b + "attn_output.weight": w(d, qd),
                  b + "attn_q_norm.weight": 1 + w(p.head_dim, std=0.1),
                  b + "attn_k_norm.weight": 1 + w(p.head_dim, std=0.1), b + "ffn_norm.weight": 1 + w(d, std=0.1),
                  b + "ffn_gate_inp.weight": w(sum(p.group_counts), d, std=1.0),
                  b + "ffn_gate_shexps.weight": w(p.shared_count, p.shared_width, d),
                  b + "ffn_up_shexps.weight": w(p.shared_count, p.shared_width, d),
                  b + "ffn_down_shexps.weight": w(p.shared_count, d, p.shared_width),
                  b + "ffn_gate_inp_shexp.weight": w(d)})
        for g, (e, f) in enumerate(zip(p.group_counts, p.group_widths)):
            t[b + f"ffn_gate_exps_g{g}.weight"] = w(e, f, d)
            t[b + f"ffn_up_exps_g{g}.weight"] = w(e, f, d)
            t[b + f"ffn_down_exps_g{g}.weight"] = w(e, d, f)
    return t


def test_hetero_round_trip(tmp_path):
    p = hetero_params()
    path = write_hmoe_gguf(tmp_path / "h.gguf", p, hetero_tensors(p), tokenizer_metadata(p.n_vocab))
    m, f = load_transformer(path)
    cfg = m.cfg
    assert (cfg.group_counts, cfg.group_widths, cfg.top_k, cfg.gating, cfg.norm_topk) == ([4, 8], [64, 32], 3,
                                                                                          "sigmoid", True)
    assert (cfg.shared_count, cfg.shared_width, cfg.shared_gate, cfg.qk_norm) == (2, 48, True, "head")
    again = save_hmoe(m, tmp_path / "again.gguf", f.metadata)
    m2, f2 = load_transformer(again)
    assert sorted(f2.tensor_names) == sorted(f.tensor_names)
    for n in f.tensor_names:
        assert torch.equal(f.tensor(n), f2.tensor(n)), n
    a = m.forward(TOKENS, m.new_cache(64), all_logits=True)
    b = m2.forward(TOKENS, m2.new_cache(64), all_logits=True)
    assert torch.equal(a, b)


def test_hetero_layer_against_a_per_token_formula():
    torch.manual_seed(0)
    d = 32
    groups = [ExpertWeights(torch.randn(3, 16, d) / 6, torch.randn(3, 16, d) / 6, torch.randn(3, d, 16) / 4),
              ExpertWeights(torch.randn(5, 8, d) / 6, torch.randn(5, 8, d) / 6, torch.randn(5, d, 8) / 3)]
    shared = ExpertWeights(torch.randn(2, 24, d) / 6, torch.randn(2, 24, d) / 6, torch.randn(2, d, 24) / 5)
    gate, router = torch.randn(d) / 6, torch.randn(8, d)
    layer = MoELayer(get_kernel("reference"), shared=shared, shared_gate=gate, router=router, routed=groups,
                     spec=RouterSpec(top_k=3, gating="softmax", normalize=True))
    x = torch.randn(7, d)
    routes = layer.route(x)
    assert [r[0].shape for r in routes] == [(7, 3), (7, 3)]
    assert torch.all((routes[0][0] >= 0) ^ (routes[1][0] >= 0))  # each slot picks one group's expert

    def ffn(w, e, v):
        return w.down[e] @ (torch.nn.functional.silu(w.gate[e] @ v) * (w.up[e] @ v))

    y = layer(x)
    for t in range(7):
        p = torch.softmax(router @ x[t], -1)
        top = torch.topk(p, 3)
        want = sum(ffn(shared, s, x[t]) for s in range(2)) * torch.sigmoid(gate @ x[t])
        for wgt, e in zip(top.values / top.values.sum(), top.indices.tolist()):
            g, le = (0, e) if e < 3 else (1, e - 3)
            want = want + wgt * ffn(groups[g], le, x[t])
        assert torch.allclose(y[t], want, atol=1e-5), t


@pytest.mark.parametrize("kernel", ["cpu-int8", "cpu-int4"])
def test_hetero_llm_generates(tmp_path, kernel):
    p = hetero_params()
    path = write_hmoe_gguf(tmp_path / "h.gguf", p, hetero_tensors(p), tokenizer_metadata(p.n_vocab))
    with TorchMoELLM(path, kernels=kernel, n_ctx=256) as llm:  # tokenizer via a vocabulary-only llama file
        assert llm.count_tokens("hello") == 4  # "he" is a merge
        c = llm.generate("hello", max_tokens=6)
        assert c.prompt_tokens == 5 and 0 < c.completion_tokens <= 6
