"""The ONNX Runtime embedder makes today's sentence-transformers vectors, without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.embed import Embedder, EmbeddingModelError, default_runtime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def texts(small_rows) -> list[str]:
    """Real paragraphs and questions of very different lengths (padding within a batch), one past the 256-token
    limit (truncation), an empty string, whitespace to strip, and non-ASCII text."""
    rows = [f"{r['title']}. {r['text']}" for r in small_rows]
    return rows + ["Who wrote Dune?", "  Frank Herbert wrote Dune.  ", "", "Ünïcödé — 東京 São Paulo",
                   " ".join(r["text"] for r in small_rows[:8])]


def test_onnx_vectors_match_sentence_transformers(texts):
    onnx = Embedder(runtime="onnx", batch_size=16)
    reference = Embedder(runtime="sentence-transformers", batch_size=16)
    a, b = onnx.encode(texts), reference.encode(texts)
    assert onnx.runtime == "onnx" and reference.runtime == "sentence-transformers"
    assert a.shape == b.shape == (len(texts), 384) and a.dtype == np.float32
    cosine = (a * b).sum(axis=1)
    assert cosine.min() > 0.999, (cosine.argmin(), cosine.min())
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    assert onnx.fingerprint == reference.fingerprint  # an index built with one serves the other


def test_onnx_query_path_imports_no_torch():
    code = ("import sys, json; from retrieval.embed import Embedder; e = Embedder(runtime='onnx'); "
            "v = e.encode(['Who wrote Dune?']); "
            "print(json.dumps([v.shape[1], e.runtime] + "
            "[m for m in ('torch', 'transformers', 'sentence_transformers', 'sklearn') if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [384, "onnx"]


def test_runtime_setting(monkeypatch):
    monkeypatch.delenv("MOESEARCH_EMBED_RUNTIME", raising=False)
    assert default_runtime() == "onnx"
    monkeypatch.setenv("MOESEARCH_EMBED_RUNTIME", "sentence-transformers")
    assert Embedder().runtime == "sentence-transformers"
    monkeypatch.setenv("MOESEARCH_EMBED_RUNTIME", "tensorflow")
    with pytest.raises(EmbeddingModelError, match="MOESEARCH_EMBED_RUNTIME='tensorflow'"):
        Embedder()


def test_no_place_for_the_onnx_file_falls_back_to_sentence_transformers(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MOESEARCH_EMBED_ONNX_DIR", str(blocker / "embed"))  # cannot be created, even as root
    e = Embedder(runtime="onnx")
    v = e.encode(["Who wrote Dune?"])
    assert e.runtime == "sentence-transformers" and v.shape == (1, 384)
    assert not list(tmp_path.rglob("*.partial"))
