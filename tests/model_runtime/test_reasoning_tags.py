"""Kind 6 of issue 15: reasoning kept out of answers whatever tags the model writes (split_reasoning)."""

from __future__ import annotations

import time

import pytest

from model_runtime.base import split_reasoning


@pytest.mark.parametrize("output, answer, reasoning", [
    # the example: the chat template opened <think> for the model, which only closes it
    ("The user asks where quokkas live. Passage [1] says Rottnest.</think>\n\nQuokkas live on Rottnest Island [1].",
     "Quokkas live on Rottnest Island [1].", "The user asks where quokkas live. Passage [1] says Rottnest."),
    ("<think>hmm, Paris</think>Paris [1]", "Paris [1]", "hmm, Paris"),
    # several closing tags: everything up to the last one is reasoning
    ("first thought</think>second thought</think>Answer [2]", "Answer [2]", "first thought\nsecond thought"),
    ("<think>a</think>draft<think>b</think>Final [1]", "Final [1]", "a\ndraft\nb"),
    # other tag names and cases models write
    ("<thinking>step 1</thinking>\nBerlin [3]", "Berlin [3]", "step 1"),
    ("<REASONING>why</REASONING>Yes [1]", "Yes [1]", "why"),
    ("considering...</thought>No.", "No.", "considering..."),
    # an opening tag that never closes: the rest is unfinished reasoning
    ("Paris [1] <think>but maybe", "Paris [1]", "but maybe"),
    ("<think>still thinking when max_tokens hit", "", "still thinking when max_tokens hit"),
    ("<think></think>Plain [1]", "Plain [1]", ""),
])
def test_reasoning_is_cut_off(output, answer, reasoning):
    assert split_reasoning(output) == (answer, reasoning)


@pytest.mark.parametrize("output", ["Plain answer [1].", "a < b and b > c", "I think, therefore [1]", ""])
def test_output_without_tags_is_the_answer(output):
    assert split_reasoning(output) == (output, None)


def test_linear_on_many_tags():
    text = "</think>" * 200_000 + "<think>" * 200_000 + "x" * 1_000_000
    t0 = time.process_time()
    answer, reasoning = split_reasoning(text)
    assert answer == "" and reasoning.endswith("x")
    assert time.process_time() - t0 < 3.0  # about 3 MB: well under a second per MB
