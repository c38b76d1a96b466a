"""Models shipped in PyPI chunk packages: assembled offline, sha256-checked, one-line errors naming what to install."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest
from typer.testing import CliRunner

from model_runtime import registry
from model_runtime.errors import CorruptModelError, ModelNotFoundError, UnknownModelError
from model_runtime.registry import PACKAGED, PackagedModel, packaged_model_path, resolve_model
from model_runtime.settings import ModelSettings


def _chunk_packages(root, name: str, chunks: list[bytes]) -> tuple[str, ...]:
    """Real importable packages laid out like the PyPI chunk wheels (``<module>/data/partNN.bin``)."""
    names = []
    for i, data in enumerate(chunks, start=1):
        module = root / f"{name}_part{i}"
        (module / "data").mkdir(parents=True)
        (module / "__init__.py").write_text("")
        (module / "data" / f"part{i:02d}.bin").write_bytes(data)
        names.append(f"{name.replace('_', '-')}-part{i}")
    return tuple(names)


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    """A packaged model of three real chunk packages on sys.path; returns (name, settings, whole file bytes)."""
    chunks = [b"GGUF" + b"a" * 1000, b"b" * 5000, b"c" * 7]
    packages = _chunk_packages(tmp_path / "site", "moesearch_test_tiny", chunks)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(chunks)
    model = PackagedModel("tiny", "tiny.gguf", packages, "0.0.1", hashlib.sha256(whole).hexdigest(), 0.0,
                          "test", "three chunks", "MIT")
    monkeypatch.setitem(PACKAGED, "tiny", model)
    return "tiny", ModelSettings(models_dir=tmp_path / "models"), whole


def test_chunks_assemble_in_order_once(tiny_model):
    name, settings, whole = tiny_model
    path = resolve_model(name, settings)
    assert path.read_bytes() == whole
    mtime = path.stat().st_mtime_ns
    assert packaged_model_path(name, settings) == path
    assert path.stat().st_mtime_ns == mtime  # checked once: the second call reuses the file
    assert not list(path.parent.glob("*.partial"))


def test_wrong_sha256_is_one_line_naming_the_fix(tiny_model, monkeypatch):
    name, settings, _ = tiny_model
    monkeypatch.setitem(PACKAGED, name, PackagedModel(**{**PACKAGED[name].__dict__, "sha256": "0" * 64}))
    with pytest.raises(CorruptModelError) as e:
        resolve_model(name, settings)
    msg = str(e.value)
    assert "\n" not in msg and "--force-reinstall" in msg and "moesearch-test-tiny-part1==0.0.1" in msg
    assert not (settings.models_dir / "tiny.gguf").exists()  # nothing half-checked under the real name


def test_missing_chunk_package_is_named(tiny_model, monkeypatch):
    name, settings, _ = tiny_model
    absent = (*PACKAGED[name].packages, "moesearch-test-absent-part4")
    monkeypatch.setitem(PACKAGED, name, PackagedModel(**{**PACKAGED[name].__dict__, "packages": absent}))
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model(name, settings)
    msg = str(e.value)
    assert "\n" not in msg
    assert "moesearch-test-absent-part4" in msg and f"moesearch model install {name}" in msg
    assert "moesearch-test-tiny-part1" not in msg  # only what is missing


def test_model_list_shows_the_packaged_model(tmp_path, monkeypatch):
    from model_runtime.cli import app

    monkeypatch.setenv("MOESEARCH_MODELS_DIR", str(tmp_path))
    out = CliRunner().invoke(app, ["list", "--json"])
    assert out.exit_code == 0, out.output
    rows = {r["name"]: r for r in json.loads(out.output)}
    assert rows["qwen2.5-1.5b"]["size_gb"] == pytest.approx(1.1)
    assert "qwen2.5-1.5b" in str(pytest.raises(UnknownModelError, resolve_model, "gpt-17").value)


def test_install_rejects_a_preset_name():
    with pytest.raises(UnknownModelError, match="moesearch model pull"):
        registry.install("qwen3-30b-a3b")


def _qwen_installed() -> bool:
    return registry.is_on_disk("qwen2.5-1.5b")


@pytest.mark.slow
@pytest.mark.skipif(not _qwen_installed(), reason="qwen2.5-1.5b not installed: moesearch model install qwen2.5-1.5b")
def test_qwen_answers_through_its_chat_template():
    from model_runtime import load_llm

    path = resolve_model("qwen2.5-1.5b")
    assert registry.sha256_of(path) == PACKAGED["qwen2.5-1.5b"].sha256
    with load_llm(ModelSettings(model="qwen2.5-1.5b", n_ctx=2048)) as llm:
        assert llm.uses_chat_template and llm.name == "qwen2.5-1.5b"
        c = llm.generate([{"role": "user", "content": "What is the capital of France? One word."}], max_tokens=8)
    assert "paris" in c.text.lower(), c.text
    assert sys.modules.get("llama_cpp") is not None
