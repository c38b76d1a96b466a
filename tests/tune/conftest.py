"""A two-layer SearchMoE of the real embedded model (Gemma 3 270M), made once per session from a tiny profile."""

from __future__ import annotations

import pytest
import torch

from tune.moefy import MoEShape, make_shape

LAYERS = 2


@pytest.fixture(scope="session")
def tiny_shape() -> MoEShape:
    return make_shape(2048, 512, 4, 16, 6)  # shared 512, 4 experts of 128, 16 of 64, top-6


@pytest.fixture(scope="session")
def dense2(embedded_model_path):
    """The parent's first two layers (dense), frozen."""
    torch.set_num_threads(1)
    from tune.model import load_dense

    return load_dense(embedded_model_path, LAYERS)


@pytest.fixture(scope="session")
def tiny_profile(dense2, embedded_model_path, shared_data):
    from tune.data import Tokens, wiki_sequences
    from tune.profile import collect

    tok = Tokens(embedded_model_path)
    calib = wiki_sequences(tok, shared_data, "calib", 384, 128)
    held = wiki_sequences(tok, shared_data, "heldout", 128, 128)
    return {"calib": collect(dense2, calib).__dict__, "heldout": collect(dense2, held).__dict__}


@pytest.fixture(scope="session")
def tiny_recipe(dense2, tiny_profile, tiny_shape, embedded_model_path):
    from tune.moefy import moefy_model
    from tune.parent import sha256_file
    from tune.recipe import Recipe

    res = moefy_model(tiny_profile, [b.ffn.down for b in dense2.blocks], tiny_shape, steps=30)
    return Recipe(embedded_model_path.stem, sha256_file(embedded_model_path), "gemma3", LAYERS, 2048, tiny_shape,
                  [r.perm for r in res], [r.router.numpy() for r in res])
