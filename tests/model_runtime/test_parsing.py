"""Repair of damaged JSON output and separation of reasoning text."""

import pytest

from model_runtime.base import apply_stops, parse_json_output, render_plain_prompt, split_reasoning
from model_runtime.errors import ModelOutputError

SCHEMA = {"type": "object", "properties": {"q": {"type": "array", "items": {"type": "string"}}}, "required": ["q"]}


def test_prose_around_json_is_removed():
    assert parse_json_output('Sure! {"q": ["a", "b"]} hope it helps', SCHEMA) == {"q": ["a", "b"]}
    assert parse_json_output('Sure!\n{"q": ["a", "b"]}', SCHEMA) == {"q": ["a", "b"]}


def test_truncated_json_is_closed():
    assert parse_json_output('{"q": ["first", "sec', SCHEMA) == {"q": ["first", "sec"]}


def test_json_not_matching_schema_raises():
    with pytest.raises(ModelOutputError, match="schema"):
        parse_json_output('{"x": 1}', SCHEMA)


def test_reasoning_is_split_off():
    assert split_reasoning("<think>hmm, Paris</think>Paris [1]") == ("Paris [1]", "hmm, Paris")
    assert split_reasoning("plain") == ("plain", None)


def test_stops_and_transcript():
    assert apply_stops("abc\nUser: x", ["\nUser:"]) == ("abc", True)
    prompt = render_plain_prompt([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert prompt.endswith("User: Hi\nAssistant:")
