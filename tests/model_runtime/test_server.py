"""`moesearch model serve` + the `openai` backend, over real HTTP on 127.0.0.1."""

import httpx
import jsonschema

from model_runtime.openai_backend import OpenAICompatLLM

PROMPT = "The three primary colours are"


def test_openai_backend_generates_and_streams(model_server):
    llm = OpenAICompatLLM(model_server)
    assert llm.name.startswith("embedded")
    assert llm.context_window == 4096
    whole = llm.generate(PROMPT, max_tokens=20)
    assert whole.text.strip() and whole.completion_tokens > 0 and whole.prompt_tokens > 0
    stream = llm.stream(PROMPT, max_tokens=20)
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces) == whole.text  # greedy: the same text streamed or not
    assert stream.completion.completion_tokens == whole.completion_tokens
    llm.close()


def test_json_schema_through_server(model_server):
    schema = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 30}}, "required": ["answer"]}
    llm = OpenAICompatLLM(model_server)
    c = llm.generate("Question: What colour is the sky?\nJSON:", max_tokens=40, json_schema=schema)
    jsonschema.validate(c.data, schema)


def test_server_speaks_openai_wire_format(model_server):
    r = httpx.post(model_server + "/chat/completions", timeout=60,
                   json={"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4})
    body = r.json()
    assert r.status_code == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["completion_tokens"] <= 4
    bad = httpx.post(model_server + "/chat/completions", json={"messages": []}, timeout=10)
    assert bad.status_code == 422  # validation error, not a crash


def test_count_tokens_matches_local_tokenizer(model_server, embedded_llm):
    llm = OpenAICompatLLM(model_server)
    text = "Mixture-of-Experts models route each token to a few experts."
    assert llm.count_tokens(text) == embedded_llm.count_tokens(text)
