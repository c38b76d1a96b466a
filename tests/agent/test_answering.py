"""What a weak base model tends to add to its answer is taken out before the citation check."""

from agent.answering import tidy as _tidy


def test_copied_evidence_after_a_quoting_delimiter_is_cut():
    raw = ("The woman was the United States ambassador to Ghana.>>> The President's Daughter (TV series): <<<The "
           "President's Daughter is a 1951 American television series")
    assert _tidy(raw) == "The woman was the United States ambassador to Ghana."


def test_a_copied_evidence_line_and_prompt_fields_are_cut():
    assert _tidy("Chief of Protocol [1].\n[2] Shirley Temple: <<<She was>>>") == "Chief of Protocol [1]."
    assert _tidy("Shirley Temple [2]\nQuestion: Who else?") == "Shirley Temple [2]"
    assert _tidy("  Chief of Protocol of the\n United States [1]. ") == "Chief of Protocol of the United States [1]."


def test_generation_stops_where_the_tidy_answer_ends():
    """The evidence stops end decoding at the first echo of the evidence; the tidy answer is the same as if the
    model had run on to its token limit."""
    from agent.prompts import EVIDENCE_STOPS

    raws = ["The woman was the United States ambassador to Ghana.>>>\n[4] The President's Daughter: <<<The show",
            "Chief of Protocol [1].\n[2] Shirley Temple: <<<She was>>>",
            "Shirley Temple [2]\nQuestion: Who else?",
            "Chief of Protocol of the\n United States [1]. It was 1976 [2].",
            # a citation on its own line, or an answer that opens with a quote, keeps its citations
            "Chief of Protocol of the United States\n[1].",
            "Chief of Protocol.\n[1][2]",
            "<<<She served as Chief of Protocol>>> [2]."]
    for raw in raws:
        cut = min([raw.find(s) for s in EVIDENCE_STOPS if s in raw] or [len(raw)])
        assert _tidy(raw[:cut]) == _tidy(raw), raw
    assert "[1]" in _tidy("Chief of Protocol of the United States\n[1].")
