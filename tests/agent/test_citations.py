"""The citation check: invalid numbers removed, unsupported citations replaced or dropped, unsettled answers say so."""

from agent.citations import UNSETTLED_NOTE, check_citations
from agent.evidence import Evidence


def ev(i, title, text):
    return Evidence(i, f"https://en.wikipedia.org/wiki/{title.replace(' ', '_')}", title, text, 0, len(text), 1.0, "q0")


SHOWN = [
    ev(1, "Kiss and Tell (1945 film)", "Kiss and Tell is a 1945 American comedy film starring then 17-year-old "
       "Shirley Temple as Corliss Archer."),
    ev(2, "Shirley Temple", "Shirley Temple Black was an American actress. As an adult she was named United States "
       "ambassador to Ghana and to Czechoslovakia and also served as Chief of Protocol of the United States."),
    ev(3, "Meet Corliss Archer", "Meet Corliss Archer is an American radio sitcom."),
]


def test_supported_citations_are_kept_and_renumbered_in_order_of_use():
    r = check_citations("Chief of Protocol [2]. Corliss Archer was played by Shirley Temple [1].", SHOWN)
    assert r.text == "Chief of Protocol [1]. Corliss Archer was played by Shirley Temple [2]."
    assert [e.title for e in r.cited] == ["Shirley Temple", "Kiss and Tell (1945 film)"]
    assert r.settled and r.removed == r.replaced == r.dropped == 0


def test_a_number_pointing_at_no_evidence_is_removed():
    r = check_citations("Shirley Temple served as Chief of Protocol [7].", SHOWN)
    assert r.removed == 1
    assert "[7]" not in r.text and "[1]" in r.text  # replaced by the passage that supports it
    assert r.cited[0].title == "Shirley Temple"


def test_an_unsupporting_citation_is_replaced_by_one_that_supports_the_sentence():
    r = check_citations("Shirley Temple was ambassador to Ghana [3].", SHOWN)
    assert r.replaced == 1 and r.cited[0].title == "Shirley Temple" and r.text.endswith("[1].")


def test_an_unsupported_sentence_loses_its_citation_and_the_answer_says_it_is_not_settled():
    r = check_citations("The moon is made of green cheese [1].", SHOWN)
    assert r.cited == [] and r.dropped == 1
    assert not r.settled and r.text.endswith(UNSETTLED_NOTE)


def test_an_uncited_supported_sentence_gets_its_source():
    r = check_citations("Shirley Temple was Chief of Protocol of the United States.", SHOWN)
    assert r.added == 1 and r.cited[0].title == "Shirley Temple" and r.settled


def test_an_answer_that_says_the_evidence_does_not_answer_is_not_settled():
    r = check_citations("The evidence does not say which position she held.", SHOWN)
    assert not r.settled and UNSETTLED_NOTE in r.text


def test_a_multi_hop_sentence_cites_the_passage_of_its_claim_and_the_bridge_passage():
    question = "What government position was held by the woman who portrayed Corliss Archer in Kiss and Tell?"
    sentence = "The woman who portrayed Corliss Archer in the film Kiss and Tell was ambassador to Ghana."
    r = check_citations(sentence, SHOWN, question=question)
    assert [e.title for e in r.cited] == ["Shirley Temple", "Kiss and Tell (1945 film)"]
    assert r.text.endswith("[1][2].") and r.settled
