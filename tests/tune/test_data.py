"""Search-task examples: the agent's formats, disjoint train/dev questions, a cap on unanswerable ones; calibration
and held-out wiki pages disjoint."""

from __future__ import annotations

import re

from tune.data import NOT_IN_EVIDENCE, search_examples, wiki_files


def _question(prompt: str) -> str:
    return prompt.rsplit("Question:", 1)[1]


def test_examples_follow_the_agent_formats_and_splits_are_disjoint(shared_data):
    train = search_examples(shared_data, "train")
    dev = search_examples(shared_data, "dev")
    assert {e.kind for e in train} == {"answer", "unanswerable", "note"}
    assert not {_question(e.prompt) for e in train} & {_question(e.prompt) for e in dev}
    for e in train[:50]:
        assert e.prompt.endswith(("\nAnswer:", "\nNote:")) and "<<<" in e.prompt
        if e.kind == "unanswerable":
            assert e.answer == f" {NOT_IN_EVIDENCE}."
        else:
            cites = [int(n) for n in re.findall(r"\[(\d+)\]", e.answer)]
            shown = re.findall(r"^\[(\d+)\] ", e.prompt.split("Question: In which city")[-1], re.M)
            assert cites and set(map(str, cites)) <= set(shown)


def test_unanswerable_share_is_capped(shared_data):
    capped = search_examples(shared_data, "train", unanswerable_share=0.15)
    share = sum(e.kind == "unanswerable" for e in capped) / len(capped)
    assert 0.1 < share <= 0.16
    assert sum(e.kind == "unanswerable" for e in search_examples(shared_data, "train")) / len(capped) > 0.4


def test_calibration_and_heldout_pages_are_disjoint(shared_data):
    calib, held = wiki_files(shared_data, "calib"), wiki_files(shared_data, "heldout")
    assert calib and held and not set(calib) & set(held)
