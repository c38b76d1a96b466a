"""The MoE layer against the dense FFN (all experts on) and against the engine's reference kernel (top-k)."""

from __future__ import annotations

import torch

from tune.model import MoEFFN
from tune.moefy import apply_moe


def _inputs(dense2, tiny_profile, layer: int) -> torch.Tensor:
    return tiny_profile["heldout"]["x"][layer].float()[:96]


def test_all_experts_active_equals_dense_ffn(dense2, tiny_profile, tiny_recipe, tiny_shape):
    x = _inputs(dense2, tiny_profile, 1)
    dense = dense2.blocks[1].ffn(x)
    f = dense2.blocks[1].ffn
    p = torch.as_tensor(tiny_recipe.perms[1])
    moe = MoEFFN(f.gate[p], f.up[p], f.down[:, p], f.act_name, tiny_shape.shared, tiny_shape.widths,
                 torch.from_numpy(tiny_recipe.routers[1]), tiny_shape.top_k)
    full = moe(x, unit=True, top_k=tiny_shape.n_experts)
    assert torch.allclose(full, dense, rtol=1e-4, atol=1e-4 * float(dense.abs().max()))
    partial = moe(x)  # top-6 of 20 with sigmoid weights: an approximation, not the dense output
    assert not torch.allclose(partial, dense, atol=1e-3 * float(dense.abs().max()))


def test_top_k_matches_engine_reference_kernel(dense2, tiny_profile, tiny_recipe, tiny_shape):
    from model_runtime.engine import ExpertWeights, get_kernel
    from model_runtime.engine.moe import MoELayer, RouterSpec

    f = dense2.blocks[0].ffn
    p = torch.as_tensor(tiny_recipe.perms[0])
    gate, up, down = f.gate[p], f.up[p], f.down[:, p]
    s = tiny_shape.shared
    shared = ExpertWeights(gate[None, :s], up[None, :s], down[None, :, :s], "gelu_tanh")
    routed, at = [], s
    for count, width in tiny_shape.groups:
        rows = [slice(at + e * width, at + (e + 1) * width) for e in range(count)]
        routed.append(ExpertWeights(torch.stack([gate[r] for r in rows]), torch.stack([up[r] for r in rows]),
                                    torch.stack([down[:, r] for r in rows]), "gelu_tanh"))
        at += count * width
    router = torch.from_numpy(tiny_recipe.routers[0])
    engine = MoELayer(get_kernel("reference"), shared=shared, router=router, routed=routed,
                      spec=RouterSpec(tiny_shape.top_k, "sigmoid", False))
    ours = MoEFFN(gate, up, down, "gelu_tanh", s, tiny_shape.widths, router, tiny_shape.top_k)
    x = _inputs(dense2, tiny_profile, 0)
    want, got = engine(x), ours(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_moefied_layers_keep_most_of_the_ffn_output(dense2, tiny_profile, tiny_recipe, tiny_shape):
    """Distilled routers beat a random choice of the same number of experts on held-out tokens."""
    from tune.moefy import layer_stats, topk_weights

    i = 1
    p = torch.as_tensor(tiny_recipe.perms[i])
    st = layer_stats(tiny_profile["heldout"]["h"][i][:, p], dense2.blocks[i].ffn.down[:, p], tiny_shape)
    x = tiny_profile["heldout"]["x"][i].float()
    routed = st.rel_error(topk_weights(x @ torch.from_numpy(tiny_recipe.routers[i]).T, tiny_shape.top_k))
    rand = st.rel_error(topk_weights(torch.randn(x.shape[0], tiny_shape.n_experts,
                                                 generator=torch.Generator().manual_seed(0)), tiny_shape.top_k, True))
    assert routed < rand


def test_apply_moe_twice_is_refused(embedded_model_path, tiny_recipe, tiny_shape):
    import pytest

    from tune.errors import TuneError
    from tune.model import load_dense

    m = load_dense(embedded_model_path, 2)
    routers = [torch.from_numpy(r) for r in tiny_recipe.routers]
    apply_moe(m, tiny_recipe.perms, routers, tiny_shape)
    with pytest.raises(TuneError, match="already an MoE"):
        apply_moe(m, tiny_recipe.perms, routers, tiny_shape)
