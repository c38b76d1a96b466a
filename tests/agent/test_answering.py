"""What a weak base model tends to add to its answer is taken out before the citation check."""

from agent.answering import _tidy


def test_copied_evidence_after_a_quoting_delimiter_is_cut():
    raw = ("The woman was the United States ambassador to Ghana.>>> The President's Daughter (TV series): <<<The "
           "President's Daughter is a 1951 American television series")
    assert _tidy(raw) == "The woman was the United States ambassador to Ghana."


def test_a_copied_evidence_line_and_prompt_fields_are_cut():
    assert _tidy("Chief of Protocol [1].\n[2] Shirley Temple: <<<She was>>>") == "Chief of Protocol [1]."
    assert _tidy("Shirley Temple [2]\nQuestion: Who else?") == "Shirley Temple [2]"
    assert _tidy("  Chief of Protocol of the\n United States [1]. ") == "Chief of Protocol of the United States [1]."
