"""A tiny end-to-end tune (two layers of the real parent, a few real search examples) lowers the loss, resumes
after an interruption, and an unfinished run cannot be exported by mistake."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tune.recipe import save_recipe
from tune.train import Checkpoint, TrainConfig, encode_example, example_loss, model_from_recipe, train


@pytest.fixture()
def few(embedded_model_path, shared_data):
    from tune.data import Tokens, search_examples

    tok = Tokens(embedded_model_path)
    exs = [e for e in search_examples(shared_data, "train", 0, 40) if len(tok.encode(e.prompt)) < 420][:3]
    assert {e.kind for e in exs} and all(e.answer.startswith(" ") for e in exs)
    return tok, exs


def _loss(model, tok, exs) -> float:
    with torch.no_grad():
        return float(np.mean([float(example_loss(model, *encode_example(tok, e, 1))[0]) for e in exs]))


def test_tiny_tune_lowers_the_loss_and_resumes(embedded_model_path, tiny_recipe, few, tmp_path):
    tok, exs = few
    model = model_from_recipe(embedded_model_path, tiny_recipe)
    before = _loss(model, tok, exs)
    cfg = TrainConfig(steps=12, lr=3e-3, router_lr=3e-3, rank=4, max_len=512, save_every=3)
    ckpt = Checkpoint(tmp_path, {"run": 1})

    def stop_at_7(step, loss):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(model, tok, exs, cfg, ckpt, eos=1, bar=False, on_step=stop_at_7)
    state = torch.load(ckpt.path, weights_only=False)
    assert state["step"] == 6 and not state["done"]
    model = model_from_recipe(embedded_model_path, tiny_recipe)  # a fresh process would start like this
    out = train(model, tok, exs, cfg, ckpt, eos=1, bar=False)
    assert out["steps"] == 12 and len(out["losses"]) == 12
    after = _loss(model, tok, exs)
    assert after < before - 0.5, (before, after)
    with pytest.raises(Exception, match="other options"):
        Checkpoint(tmp_path, {"run": 2}).load()


def test_export_refuses_an_unfinished_run(embedded_model_path, tiny_recipe, tmp_path):
    from typer.testing import CliRunner

    from tune.cli import app
    from tune.errors import TuneError

    work = tmp_path / "work"
    (work / "train").mkdir(parents=True)
    save_recipe(tiny_recipe, work / "moefied.npz")
    torch.save({"step": 40, "done": False, "target": 200}, work / "train" / "ckpt.pt")
    res = CliRunner().invoke(app, ["export", "--work", str(work), "--threads", "1"])
    assert isinstance(res.exception, TuneError)
    msg = str(res.exception)
    assert "step 40 of 200" in msg and "tune train" in msg and "\n" not in msg


def test_help_says_how_long_each_step_takes():
    from typer.testing import CliRunner

    from tune.cli import app

    out = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    for step in ("profile", "moefy", "train", "export", "build", "eval"):
        assert step in out
    assert out.count("min") + out.count(" s)") >= 4
