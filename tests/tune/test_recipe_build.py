"""The recipe round-trips; the GGUF built from it loads in our engine and generates; bad inputs -> one line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tune.build import build_gguf, check_hmoe
from tune.errors import TuneError
from tune.recipe import load_recipe, save_recipe


def _with_lora(recipe):
    rng = np.random.default_rng(0)
    lora = {f"{i}.{t}.{m}": rng.standard_normal(shape).astype(np.float16) * 0.01
            for i in range(recipe.n_layer) for t, (o, n) in {"q": (1024, 640), "down": (640, 2048)}.items()
            for m, shape in (("A", (4, n)), ("B", (o, 4)))}
    return dataclasses.replace(recipe, lora=lora, lora_rank=4, lora_alpha=8.0, info={"note": "test"})


def test_recipe_round_trips(tiny_recipe, tmp_path):
    r = _with_lora(tiny_recipe)
    back = load_recipe(save_recipe(r, tmp_path / "r.npz"))
    assert back.meta() == r.meta()
    for a, b in zip(back.perms + back.routers, r.perms + r.routers):
        assert np.array_equal(a, b)
    assert back.lora.keys() == r.lora.keys() and all(np.array_equal(back.lora[k], r.lora[k]) for k in r.lora)
    assert (tmp_path / "r.npz").stat().st_size < 2_000_000


def test_damaged_or_inconsistent_recipe_is_one_line(tiny_recipe, tmp_path):
    path = save_recipe(tiny_recipe, tmp_path / "r.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(TuneError, match="export it again") as e:
        load_recipe(path)
    assert "\n" not in str(e.value)
    bad = dataclasses.replace(tiny_recipe, perms=[tiny_recipe.perms[0], tiny_recipe.perms[0][::2]])
    with pytest.raises(TuneError, match="not a permutation"):
        load_recipe(save_recipe(bad, tmp_path / "bad.npz"))


def test_recipe_for_another_parent_or_missing_parent(tiny_recipe, tmp_path, embedded_model_path):
    other = dataclasses.replace(tiny_recipe, parent_sha256="0" * 64)
    with pytest.raises(TuneError, match="pass --parent with the file it fits"):
        build_gguf(other, embedded_model_path, tmp_path / "x.gguf")
    with pytest.raises(TuneError, match="does not exist"):
        build_gguf(tiny_recipe, tmp_path / "missing.gguf", tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_built_gguf_loads_in_engine_and_generates(tiny_recipe, tmp_path, embedded_model_path):
    from model_runtime.engine import load_torch_llm
    from model_runtime.settings import ModelSettings

    out = tmp_path / "tiny.gguf"
    built = build_gguf(_with_lora(tiny_recipe), embedded_model_path, out)
    assert check_hmoe(out) == {"layers": 2, "groups": [(4, 128), (16, 64)], "top_k": 6, "shared": 512}
    llm = load_torch_llm(out, ModelSettings(model=str(out), backend="torch", torch_kernels="reference", n_ctx=256))
    try:
        layer = llm.model.blocks[0].ffn
        assert layer.group_sizes == [4, 16] and layer.group_widths == [128, 64] and layer.spec.gating == "sigmoid"
        c = llm.generate("The capital of France is", max_tokens=4)
        assert c.completion_tokens >= 1
    finally:
        llm.close()
    again = build_gguf(dataclasses.replace(_with_lora(tiny_recipe), info={"gguf_sha256": built["sha256"]}),
                       embedded_model_path, tmp_path / "again.gguf")
    assert again["sha256"] == built["sha256"]  # deterministic: a shipped recipe pins the file it builds


def test_inconsistent_hmoe_metadata_is_one_line(tiny_recipe, tmp_path, embedded_model_path):
    import gguf

    from model_runtime.engine.gguf_file import GGUFModelFile

    good = tmp_path / "good.gguf"
    build_gguf(tiny_recipe, embedded_model_path, good)
    src = GGUFModelFile(good)
    bad = tmp_path / "bad.gguf"
    w = gguf.GGUFWriter(str(bad), "moesearch-hmoe")
    w.add_uint32("moesearch-hmoe.block_count", 1)
    w.add_uint32("moesearch-hmoe.embedding_length", 640)
    w.add_array("moesearch-hmoe.expert_group_counts", [4, 16])
    w.add_array("moesearch-hmoe.expert_group_feed_forward_lengths", [64, 128])  # swapped: tensors disagree
    w.add_uint32("moesearch-hmoe.expert_used_count", 6)
    w.add_uint32("moesearch-hmoe.expert_shared_feed_forward_length", 512)
    for n in ("blk.0.ffn_gate_inp.weight", "blk.0.ffn_gate_shexps.weight"):
        w.add_tensor(n, src.tensor(n).numpy())
    w.add_tensor("blk.0.ffn_gate_exps_g0.weight", src.tensor("blk.0.ffn_gate_exps_g0.weight").numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(TuneError, match="rebuild it") as e:
        check_hmoe(bad)
    assert "\n" not in str(e.value)


def _engine_vs_tune(out, recipe, embedded_model_path):
    import torch

    from model_runtime.engine.loader import load_transformer
    from tune.data import Tokens
    from tune.train import model_from_recipe

    tok = Tokens(embedded_model_path)
    ids = tok.bos() + tok.encode("The Eiffel Tower is a wrought-iron lattice tower in Paris, France.")
    with torch.no_grad():
        want = model_from_recipe(embedded_model_path, recipe)(torch.tensor(ids), logits_at=torch.arange(len(ids)))
    m, _ = load_transformer(out, "reference")
    got = m.forward(ids, m.new_cache(128), all_logits=True)
    return float((got - want).norm() / want.norm()), m


def test_engine_computes_what_tune_trained_given_gemma_keys(tiny_recipe, tmp_path, embedded_model_path):
    """The built file holds the Gemma parts (post norms, embedding scale, sliding window) under moesearch-hmoe keys;
    the engine's hmoe architecture reads them and computes the same logits as tune's model, up to the Q8_0 storage
    of the experts."""
    out = tmp_path / "tiny.gguf"
    build_gguf(_with_lora(tiny_recipe), embedded_model_path, out)
    rel, m = _engine_vs_tune(out, _with_lora(tiny_recipe), embedded_model_path)
    assert m.cfg.sliding_window == 512 and m.blocks[0].post_attn_norm is not None
    assert rel < 0.05, rel
