"""Dataset loading: the shipped HotpotQA copy, the registry, user files and malformed lines."""

from __future__ import annotations

import json
import subprocess

import pytest

from eval import datasets as D
from eval.errors import DatasetNotFoundError, MalformedDatasetError

from .conftest import PY, ROOT, SHIPPED, write_subset


def test_shipped_copy_of_hotpotqa_dev(shared_data):
    ds = D.load_dataset("hotpotqa-dev", on_bad_line="stop")
    assert len(ds) == 300 and not ds.problems
    assert len({ex.id for ex in ds}) == 300
    assert all(ex.answers and ex.question and len(ex.context) >= 2 and len(ex.supporting_titles) == 2 for ex in ds)
    # every gold title is one of the question's own context paragraphs, so the local web can serve it
    assert all(set(ex.supporting_titles) <= {t for t, _ in ex.context} for ex in ds)
    assert SHIPPED.read_bytes() == (shared_data / "hotpotqa" / "dev300.jsonl").read_bytes()
    attribution = (ROOT / "eval" / "data" / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "CC BY-SA 4.0" in attribution and "hotpotqa-dev.jsonl" in attribution and "Yang" in attribution
    paragraphs = ds.paragraphs()  # the corpus the local web serves: one page per distinct title
    assert len(paragraphs) == len({t for t, _ in paragraphs}) > 2500
    assert "hotpotqa-dev" in {d.name for d in D.list_datasets()}


def test_user_file_by_path(tmp_path):
    path = write_subset(tmp_path / "three.jsonl", 3)
    ds = D.load_dataset(str(path))
    assert len(ds) == 3 and ds.has_context and ds.name == str(path)
    assert ds.head(2) == ds.examples[:2]
    assert len(ds.sha256) == 64


def test_minimal_lines_and_alternative_field_names(tmp_path):
    path = tmp_path / "mini.jsonl"
    path.write_text(
        json.dumps({"id": 1, "question": "Who wrote Dune?", "answer": "Frank Herbert"}) + "\n"
        + json.dumps({"_id": "b", "question": "Q?", "answers": ["x", "y"],
                      "supporting_facts": [["T1", 0], ["T2", 3], ["T1", 2]]}) + "\n",
        encoding="utf-8")
    ds = D.load_dataset(path)
    assert [ex.id for ex in ds] == ["1", "b"]
    assert ds.examples[0].answers == ["Frank Herbert"] and not ds.has_context
    assert ds.examples[1].supporting_titles == ["T1", "T2"]


def _bad_file(tmp_path):
    good = SHIPPED.read_text(encoding="utf-8").splitlines()
    lines = [
        good[0],                                                   # 1 ok
        '{"id": "x", "question": "broken',                         # 2 invalid JSON
        json.dumps({"id": "y", "question": "No answers?"}),        # 3 missing answers
        "",                                                        # 4 blank: ignored
        good[0],                                                   # 5 duplicate id
        json.dumps({"id": "z", "question": "Q", "answers": ["a"], "context": [["T"]]}),  # 6 bad context
        "[1, 2]",                                                  # 7 not an object
        good[1],                                                   # 8 ok
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_malformed_lines_are_skipped_with_line_numbers(tmp_path):
    ds = D.load_dataset(_bad_file(tmp_path), on_bad_line="skip")
    assert len(ds) == 2
    assert [p.line for p in ds.problems] == [2, 3, 5, 6, 7]
    text = [str(p) for p in ds.problems]
    assert text[0].startswith("line 2: invalid JSON")
    assert "answers" in text[1] and "duplicate id" in text[2] and "context" in text[3] and "JSON object" in text[4]


def test_malformed_line_stops_the_run_when_asked(tmp_path):
    with pytest.raises(MalformedDatasetError) as err:
        D.load_dataset(_bad_file(tmp_path), on_bad_line="stop")
    assert err.value.line == 2 and "line 2" in str(err.value) and "--on-bad-line skip" in str(err.value)
    assert err.value.user_facing and err.value.exit_code == 2


def test_unknown_dataset_and_empty_file(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        D.load_dataset("no-such-set")
    assert "hotpotqa-dev" in str(err.value) and err.value.exit_code == 2
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(MalformedDatasetError):
        D.load_dataset(empty)


def test_cli_reports_a_bad_line_and_exits_2(tmp_path, eval_env):
    path = _bad_file(tmp_path)
    proc = subprocess.run([PY, "-m", "agent.cli", "eval", "run", "--dataset", str(path), "--mode", "closed-book",
                           "--on-bad-line", "stop", "--json"], cwd=ROOT, env=eval_env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "line 2" in proc.stderr
    assert "Traceback" not in proc.stderr
