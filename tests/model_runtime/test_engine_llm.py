"""The `torch` backend of the LLM interface: generate, stream, stops, token counts, sampling, the CLI."""

from __future__ import annotations

import json
import os

import pytest

from model_runtime.engine.llm import TorchMoELLM
from model_runtime.errors import ContextOverflowError
from tests.model_runtime.conftest import run_cli
from tests.model_runtime.gguf_fixtures import embedded_transformer, llama_greedy, random_gguf

PROMPT = "The three primary colors are"


@pytest.fixture(scope="module")
def torch_llm(embedded_model_path):
    llm = TorchMoELLM(embedded_model_path, model=embedded_transformer("reference"), chat_template="none",
                      name="embedded")
    yield llm
    llm.close()


def test_generate_is_llamacpp_greedy(torch_llm, embedded_model_path):
    prompt = torch_llm.tokenize(PROMPT)
    want, _ = llama_greedy(embedded_model_path, prompt, 12)
    c = torch_llm.generate(PROMPT, max_tokens=12)
    assert c.text == torch_llm.tokenizer.decode_bytes(want).decode("utf-8", "replace")
    assert (c.prompt_tokens, c.completion_tokens, c.finish_reason) == (len(prompt), 12, "length")


def test_stream_equals_generate_and_reuses_the_cache(torch_llm):
    full = torch_llm.generate(PROMPT, max_tokens=10).text
    n_prompt = len(torch_llm.tokenize(PROMPT))
    stream = torch_llm.stream(PROMPT, max_tokens=10)
    pieces = list(stream)
    # the same prompt again: all but its last token come from the KV cache (the last one gives the logits)
    assert torch_llm.reused_tokens == n_prompt - 1
    torch_llm.generate("Something else entirely", max_tokens=1)
    assert torch_llm.reused_tokens <= 1  # at most the shared BOS
    assert len(pieces) > 1 and "".join(pieces) == full
    assert stream.completion.text == full and stream.completion.completion_tokens == 10


def test_stop_sequence_cuts_the_text(torch_llm):
    full = torch_llm.generate(PROMPT, max_tokens=12).text
    stop = full.strip().split()[1]  # the second word
    cut = full.find(stop)
    c = torch_llm.generate(PROMPT, max_tokens=12, stop=[stop])
    assert c.text == full[:cut] and c.finish_reason == "stop"
    assert "".join(torch_llm.stream(PROMPT, max_tokens=12, stop=[stop])) == full[:cut]


def test_count_tokens_matches_llamacpp(torch_llm, embedded_llm):
    text = "Mixture-of-Experts models route each token to a few experts. 🙂"
    assert torch_llm.count_tokens(text) == embedded_llm.count_tokens(text)


def test_sampling_and_context_window(torch_llm):
    c = torch_llm.generate(PROMPT, max_tokens=6, temperature=0.9)
    assert 0 < c.completion_tokens <= 6
    assert torch_llm.context_window == 8192
    with pytest.raises(ContextOverflowError):
        torch_llm.generate("word " * 9000, max_tokens=4)


def test_load_llm_torch_backend_on_a_moe_file(tmp_path):
    from model_runtime import load_llm

    path = random_gguf(tmp_path, "qwen2moe")
    with load_llm(model=str(path), backend="torch", torch_kernels="cpu-int8", n_ctx=512,
                  prepared_cache_dir=tmp_path / "prepared") as llm:
        assert llm.backend == "torch" and llm.kernel_name == "cpu-int8" and llm.context_window == 512
        c = llm.generate("hello", max_tokens=5)
        assert c.completion_tokens <= 5 and c.prompt_tokens == 5  # BOS, "he", l, l, o
    assert len(list((tmp_path / "prepared").glob("*.pt"))) == 1  # the setting reaches the loader


def test_cli_generate_backend_torch(tmp_path):
    r = run_cli("model", "generate", PROMPT, "--backend", "torch", "--max-tokens", "8", "--json", "--n-ctx", "512",
                env={"MOESEARCH_PREPARED_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["backend"] == "torch" and out["completion_tokens"] == 8 and out["text"].strip()


def test_cli_unknown_kernel_names_the_available_ones():
    r = run_cli("model", "generate", "hi", "--backend", "torch", "--kernels", "nope")
    assert r.returncode == 2
    assert "unknown expert kernel 'nope'" in r.stderr and "reference" in r.stderr and "cpu-int4" in r.stderr


def test_cli_serve_backend_torch(tmp_path):
    """`moesearch model serve --backend torch` hosts our engine behind the OpenAI-compatible API."""
    import httpx

    from tests.conftest import free_port, moesearch_server

    path = random_gguf(tmp_path, "qwen3moe")
    port = free_port()
    args = ["model", "serve", "--backend", "torch", "--model", str(path), "--port", str(port), "--n-ctx", "512"]
    env = {**os.environ, "MOESEARCH_PREPARED_CACHE_DIR": str(tmp_path / "prepared")}  # not the user's cache
    with moesearch_server(args, f"http://127.0.0.1:{port}/health", env=env):
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions", timeout=60,
                       json={"prompt": "hello", "max_tokens": 4, "temperature": 0})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["usage"]["prompt_tokens"] == 5 and body["usage"]["completion_tokens"] <= 4
