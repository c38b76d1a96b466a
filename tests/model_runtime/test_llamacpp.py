"""The embedded model through the in-process llama.cpp backend."""

from model_runtime.base import Message

PROMPT = "The capital of France is"


def test_generates_text(embedded_llm):
    c = embedded_llm.generate(PROMPT, max_tokens=12)
    assert c.text.strip()
    assert 0 < c.completion_tokens <= 12
    assert c.prompt_tokens == embedded_llm.count_tokens(PROMPT) + 1  # + BOS


def test_greedy_stream_equals_generate(embedded_llm):
    whole = embedded_llm.generate(PROMPT, max_tokens=24, temperature=0.0)
    stream = embedded_llm.stream(PROMPT, max_tokens=24, temperature=0.0)
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces) == whole.text
    assert stream.completion.text == whole.text
    assert stream.completion.completion_tokens == whole.completion_tokens


def test_stop_sequence_cuts_output(embedded_llm):
    free = embedded_llm.generate("1, 2, 3, 4,", max_tokens=16)
    assert "6" in free.text  # the model counts on; the stop below must cut it there
    c = embedded_llm.generate("1, 2, 3, 4,", max_tokens=16, stop=["6"])
    assert "6" not in c.text and c.finish_reason == "stop"


def test_json_schema_output_matches_schema(embedded_llm):
    import jsonschema

    schema = {"type": "object",
              "properties": {"city": {"type": "string", "maxLength": 40},
                             "population": {"type": "integer"},
                             "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3}},
              "required": ["city", "population", "tags"]}
    c = embedded_llm.generate("Describe Paris as JSON with city, population and tags.\n", max_tokens=120,
                              json_schema=schema)
    jsonschema.validate(c.data, schema)
    assert isinstance(c.data["population"], int)


def test_count_tokens_agrees_with_tokenizer(embedded_llm):
    text = "Arthur's Magazine (1844–1846) was an American literary periodical."
    ids = embedded_llm.tokenize(text, add_bos=False)
    assert embedded_llm.count_tokens(text) == len(ids)
    assert embedded_llm._llm.detokenize(ids).decode("utf-8") == text
    assert embedded_llm.count_tokens("") == 0


def test_conversation_rendered_for_base_model(embedded_llm):
    assert not embedded_llm.uses_chat_template  # the embedded model is a base model: completion-style prompts
    c = embedded_llm.generate([Message("system", "Answer briefly."), Message("user", "Name a colour.")],
                              max_tokens=8, stop=["\n"])
    assert isinstance(c.text, str)


CAPITALS = ('Country: France\nJSON: {"capital": "Paris"}\n\nCountry: Germany\nJSON: {"capital": "Berlin"}\n\n'
            'Country: Italy\nJSON:')
CAPITAL_SCHEMA = {"type": "object", "properties": {"capital": {"type": "string", "maxLength": 30}},
                  "required": ["capital"]}


def test_valid_json_without_grammar_is_kept(embedded_llm):
    # greedy output that already fits the schema skips the (slow) grammar; the grammar would have forced "{"
    # where the model writes " {", and the small model, pushed off its course, then answers Milan
    text, n, kept = embedded_llm._greedy_json_without_grammar(CAPITALS, 40, ["\n\n"], CAPITAL_SCHEMA)
    assert kept and n < 40
    c = embedded_llm.generate(CAPITALS, max_tokens=40, stop=["\n\n"], json_schema=CAPITAL_SCHEMA)
    assert c.data == {"capital": "Rome"} and c.text == text


def test_json_that_breaks_the_schema_falls_back_to_the_grammar(embedded_llm):
    import jsonschema

    schema = {"type": "object", "properties": {"capital": {"type": "integer"}}, "required": ["capital"]}
    _, n, kept = embedded_llm._greedy_json_without_grammar(CAPITALS, 40, ["\n\n"], schema)
    assert not kept and n < 10  # abandoned at '"capital": "', not run on to max_tokens
    c = embedded_llm.generate(CAPITALS, max_tokens=40, stop=["\n\n"], json_schema=schema)
    jsonschema.validate(c.data, schema)
    assert c.completion_tokens > n  # the abandoned attempt's tokens are counted with the grammar's


def _fake_llm(pieces):
    """The backend without a model: its decoding yields `pieces`; returns (llm, how many were consumed)."""
    import threading

    from model_runtime.llamacpp_backend import LlamaCppLLM

    llm, consumed = object.__new__(LlamaCppLLM), []
    llm._lock = threading.Lock()

    def chunks(*args):
        for p in pieces:
            consumed.append(p)
            yield {"text": p, "finish_reason": None}

    llm._chunks = chunks
    return llm, consumed


def test_a_broken_start_is_abandoned_at_once_and_frees_the_model():
    schema = {"type": "object", "properties": {"q": {"type": "array", "maxItems": 1}}, "required": ["q"]}
    cases = [["{'q", "': [", "1]}"],  # single quotes
             ['{"q": [1', ", 2", "]", "}"],  # one item too many
             ['{"q": ["a\nb', '",', " 3]}"],  # a raw newline inside a string
             ["Sure", ", here", " it is: {}"]]  # prose first
    for pieces in cases:
        llm, consumed = _fake_llm(pieces + ["padding"] * 50)
        _, _, kept = llm._greedy_json_without_grammar("p", 100, None, schema)
        assert not kept and len(consumed) <= 3, pieces
        assert llm._lock.acquire(blocking=False)  # the lock was released when the attempt was abandoned


def test_unfinished_json_judged_only_on_what_is_final():
    import jsonschema

    from model_runtime.partial_json import breaks_schema

    schema = {"type": "object", "properties": {"items": {"type": "array", "maxItems": 2, "items": {
        "type": "object", "properties": {"id": {"type": "string", "pattern": "^q[1-9]$"},
                                         "n": {"type": "integer", "minimum": 10}},
        "required": ["id", "text"]}}}, "required": ["items"]}
    v = jsonschema.Draft202012Validator(schema)
    assert not breaks_schema('{"items": [{"id": "q', v)  # pattern and required wait for the end
    assert not breaks_schema('{"items": [{"id": "q1", "text": "a"}, {"id": "q2"', v)  # item still open
    assert not breaks_schema('{"items": [{"id": "q1", "n": 1', v)  # 1 may still become 12
    assert breaks_schema('{"items": [{"id": "q1"},', v)  # closed without its required "text"
    assert breaks_schema('{"items": [{"id": "q1", "text": "a"}, {"id": "q2", "text": "b"}, {', v)  # too many
    assert breaks_schema('{"items": 3', v)  # wrong type
    for broken in ["{'items': [{'id': 'q1',", '{"items": [{"id": "q1" "text": "x"},',
                   '{"items": [{"id": "Who?\nQuestion: In which", "text": "x"},']:
        assert breaks_schema(broken, v), broken
