"""Issue 15 kinds 7, 8 and 10 (the citation check's part): citation markers in every shape, support checked per
clause, and every script's letters kept when support is measured."""

import pytest

from agent.citations import check_citations, clauses
from agent.evidence import Evidence
from agent.text import cited_numbers, key_terms, replace_citations, strip_citations


def ev(i, title, text):
    return Evidence(i, f"http://127.0.0.1/wiki/{i}", title, text, 0, len(text), 1.0, "q0")


SHOWN = [
    ev(1, "Quokka survey", "A 2020 survey counted about 12,000 quokkas living on Rottnest Island, off Perth."),
    ev(2, "Quokka", "The quokka is a small wallaby about the size of a domestic cat."),
    ev(3, "Rottnest Island", "Rottnest Island lies 18 km off the coast of Western Australia."),
    ev(4, "Perth", "Perth is the capital of Western Australia."),
    ev(5, "Wallaby", "Wallabies are marsupials that carry their young in a pouch."),
]

# ---------- kind 7: marker shapes ----------

SHAPES = [  # (marker as a model writes it, the numbers it cites)
    ("[2]", [2]), ("[1, 3, 5]", [1, 3, 5]), ("[1,3]", [1, 3]), ("[1;2]", [1, 2]), ("[2-4]", [2, 3, 4]),
    ("[2–4]", [2, 3, 4]), ("[2—3]", [2, 3]), ("[^2]", [2]), ("【1】", [1]), ("［1］", [1]), ("［１］", [1]),
    ("〔3〕", [3]), ("【1，2】", [1, 2]), ("[1、2]", [1, 2]), ("[source 2]", [2]), ("[Source: 4]", [4]),
    ("[1 and 3]", [1, 3]), ("[1][2]", [1, 2]), (".²", [2]), (".¹˒³", [1, 3]),
]


@pytest.mark.parametrize("marker, numbers", SHAPES)
def test_every_marker_shape_is_parsed(marker, numbers):
    assert cited_numbers(f"Quokkas live on Rottnest Island{marker}") == numbers
    assert not any(c in strip_citations(f"Island {marker} x") for c in "[]【】［］〔〕¹²³")


def test_a_unit_is_not_a_citation_nor_a_huge_range():
    assert cited_numbers("an area of 19 km² in total") == []
    assert cited_numbers("[1-500]") == [1, 500]  # not 500 citations


@pytest.mark.parametrize("marker", ["[1, 3, 5]", "[^2]", "【2】", "[2-3]", "［２］", "[1;2]", ".²"])
def test_after_the_check_only_plain_markers_remain(marker):
    r = check_citations(f"The quokka is about the size of a domestic cat{marker}", SHOWN)
    assert r.text.count("[") == len(r.cited) >= 1
    assert not any(c in r.text for c in "^【】［］〔〕¹²³;-–")
    assert [e.title for e in r.cited] == ["Quokka"]  # the passage that supports it, renumbered [1]
    assert r.text.rstrip(".") == "The quokka is about the size of a domestic cat [1]"


def test_the_issue_example_list_and_footnote():
    r = check_citations("Quokkas live on Rottnest Island [1, 3, 5]. Quokkas are about the size of a cat [^2].\n\n"
                        "[^2]: Quokka, Wikipedia", SHOWN)
    assert "[^" not in r.text and "Wikipedia" not in r.text
    assert [e.title for e in r.cited][:1] == ["Quokka survey"] and SHOWN[1] in r.cited
    assert SHOWN[4] not in r.cited  # [5] (wallabies) supports nothing here: dropped


def test_replace_citations_renumbers_every_shape():
    assert replace_citations("a [2-3] b 【1】 c [^3]", {1: 9, 2: 7, 3: 8}.get) == "a [7][8] b [9] c [8]"


# ---------- kind 8: per clause ----------

def test_clauses_split_at_markers_and_between_claims():
    parts = clauses("Quokkas live on Rottnest Island [1] and are about the size of a cat [2].")
    assert [(t.strip(), n) for t, n in parts] == [("Quokkas live on Rottnest Island", [1]),
                                                   ("and are about the size of a cat", [2]), (".", [])]
    assert len(clauses("Kiss and Tell is a 1945 comedy film [1].")) == 2  # the clause and its full stop


def test_the_issue_example_a_survey_passage_does_not_support_the_size():
    r = check_citations("Quokkas live on Rottnest Island [1] and are about the size of a cat [1].", SHOWN)
    assert r.text == "Quokkas live on Rottnest Island [1] and are about the size of a cat [2]."
    assert [e.title for e in r.cited] == ["Quokka survey", "Quokka"] and r.replaced == 1


def test_one_citation_for_two_claims_is_split_to_the_passages_that_support_each():
    r = check_citations("Rottnest Island lies 18 km off Western Australia, and the quokka is the size of a "
                        "domestic cat [3].", SHOWN)
    assert [e.title for e in r.cited] == ["Rottnest Island", "Quokka"]
    assert r.text.startswith("Rottnest Island lies 18 km off Western Australia [1], and the quokka")


def test_a_clause_nothing_supports_loses_its_citation():
    r = check_citations("Perth is the capital of Western Australia [4] and quokkas can fly to the moon [4].", SHOWN)
    assert [e.title for e in r.cited] == ["Perth"] and r.dropped == 1
    assert r.text == "Perth is the capital of Western Australia [1] and quokkas can fly to the moon."


# ---------- kind 10: every script's letters count ----------

ZH = [ev(1, "秀兰·邓波儿", "秀兰·邓波儿是美国演员，后来担任美国驻加纳大使。"),
      ev(2, "京都", "京都是日本的古都，有许多寺庙。")]
RU = [ev(1, "Ширли Темпл", "Ширли Темпл была американской актрисой и позже служила послом США в Гане."),
      ev(2, "Москва", "Москва является столицей России и крупнейшим городом страны.")]


def test_key_terms_keep_non_latin_letters():
    assert key_terms("Москва является столицей") and key_terms("京都是日本的古都")
    assert key_terms("Москва") != key_terms("Гана")  # used to be the empty set for both


@pytest.mark.parametrize("shown, supported, wrong", [
    (ZH, "秀兰·邓波儿担任美国驻加纳大使[2]。", "京都有许多寺庙[1]。"),
    (RU, "Ширли Темпл служила послом США в Гане [2].", "Москва является столицей России [1]."),
])
def test_a_citation_to_the_wrong_page_is_moved_in_chinese_and_russian(shown, supported, wrong):
    r = check_citations(supported, shown)
    assert r.cited == [shown[0]] and r.replaced == 1 and r.settled
    r = check_citations(wrong, shown)
    assert r.cited == [shown[1]] and r.replaced == 1


@pytest.mark.parametrize("shown, claim", [(ZH, "东京是世界上最大的城市[1]。"), (RU, "Париж является столицей Франции [2].")])
def test_a_claim_no_page_supports_is_not_accepted_in_other_scripts(shown, claim):
    r = check_citations(claim, shown)
    assert r.cited == [] and not r.settled
