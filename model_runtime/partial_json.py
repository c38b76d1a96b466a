"""Unfinished JSON output: closing what a cut-off generation left open, and judging a prefix against a schema.

A generation decoded without a grammar is stopped as soon as its prefix can no longer become a value the schema
accepts (see LlamaCppLLM._greedy_json_without_grammar), so a wrong start costs a few tokens, not max_tokens.
"""

from __future__ import annotations

import json
import re

import jsonschema

# Rules only the finished value can be judged by: a string, list or number may still grow, and a combinator may
# still be satisfied by what follows. Everything else (a list already too long, a key not allowed, a wrong type, a
# string already too long, a required key missing from an object already closed) is final as soon as it shows.
FINAL_ONLY = {"minItems", "minProperties", "minLength", "minContains", "contains", "enum", "const", "pattern",
              "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "anyOf", "oneOf",
              "allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies"}


def scan(text: str) -> tuple[list[str], bool, int]:
    """(closing brackets still owed, innermost last; whether the text ends inside a string; the index just after
    the last ',', '}' or ']' outside a string, 0 if none)."""
    stack, in_str, esc, boundary = [], False, False, 0
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in ",}]":
            boundary = i + 1
            if ch != "," and stack:
                stack.pop()
    return stack, in_str, boundary


def close_brackets(text: str) -> str:
    """Close strings, arrays and objects left open by a truncated generation."""
    stack, in_str, _ = scan(text)
    out = text + ('"' if in_str else "")
    out = re.sub(r",\s*$", "", out)
    return out + "".join(reversed(stack))


def breaks_schema(partial: str, validator: jsonschema.protocols.Validator) -> bool:
    """Whether an unfinished JSON text can no longer become a value that `validator`'s schema accepts.

    Judged on the whole text with its brackets closed; where that does not parse (cut inside a key or a literal),
    on the text up to its last ',', '}' or ']' outside a string: a prefix of valid JSON cut there always closes to
    valid JSON, so if it does not, the syntax is already broken (single quotes, a missing comma, a raw newline in a
    string, which strict JSON and the grammar forbid)."""
    boundary = scan(partial)[2]
    for text in (partial, partial[:boundary]):
        try:
            value, _ = json.JSONDecoder().raw_decode(close_brackets(text))
        except json.JSONDecodeError:
            continue
        still_open = _open_paths(value, len(scan(text)[0]))
        return any(e.validator not in FINAL_ONLY and not (e.validator == "required" and tuple(e.path) in still_open)
                   for e in validator.iter_errors(value))
    return boundary > 0


def _open_paths(value, n_open: int) -> set[tuple]:
    """Paths of the containers still open in a truncated output: the root, then the last child, n_open deep."""
    paths, path, node = set(), (), value
    for _ in range(n_open):
        paths.add(path)
        if not isinstance(node, (dict, list)) or not node:
            break
        key = list(node)[-1] if isinstance(node, dict) else len(node) - 1
        path, node = path + (key,), node[key]
    return paths
