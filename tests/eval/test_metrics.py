"""The metric functions against hand-checked cases."""

from __future__ import annotations

import math

import pytest

from eval import metrics as M


@pytest.mark.parametrize("raw, norm", [
    ("The Quick, Brown Fox!", "quick brown fox"),
    ("  an   apple a day ", "apple day"),
    ("U.S.A.", "usa"),
    ("Théâtre  de l'Odéon", "théâtre de lodéon"),  # only ASCII punctuation is deleted
    ("Anatomy", "anatomy"),  # 'an' is dropped only as a whole word
])
def test_normalisation(raw, norm):
    assert M.normalize_answer(raw) == norm


def test_exact_match_rules():
    assert M.exact_match("the Eiffel Tower.", ["Eiffel Tower"]) == 1.0
    assert M.exact_match("Eiffel Tower in Paris", ["Eiffel Tower"]) == 0.0
    assert M.exact_match("Paris [1].", ["Paris"]) == 1.0  # citation markers are not part of the answer
    assert M.exact_match("Lyon", ["Paris", "lyon"]) == 1.0  # any gold answer


def test_f1_hand_checked():
    # pred tokens: chief of protocol of united states (6); gold: chief of protocol (3); overlap 3
    # P = 3/6, R = 3/3, F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert M.f1("Chief of Protocol of the United States", ["Chief of Protocol"]) == pytest.approx(2 / 3)
    # bag overlap counts repeated tokens once per occurrence: pred "x y y" vs gold "y y z" -> overlap 2
    assert M.f1("x y y", ["y y z"]) == pytest.approx(2 / 3)
    assert M.f1("completely different", ["Chief of Protocol"]) == 0.0
    assert M.f1("", ["Paris"]) == 0.0


def test_f1_best_over_multiple_golds():
    # "Paris France" vs "Paris": P 1/2, R 1 -> 2/3; vs "France Paris": 1.0
    assert M.f1("Paris France", ["Paris", "Lyon"]) == pytest.approx(2 / 3)
    assert M.f1("Paris France", ["Paris", "France Paris"]) == pytest.approx(1.0)


def test_yes_no_rule():
    assert M.f1("yes", ["no"]) == 0.0
    assert M.f1("No.", ["no"]) == 1.0
    # gold is "yes" and the normalised prediction is not exactly "yes": F1 is 0 even with "yes" in it
    assert M.f1("yes it is", ["yes"]) == 0.0
    # prediction is "no", gold is an ordinary answer containing "no": still 0
    assert M.f1("no", ["no way"]) == 0.0
    assert M.f1("noanswer", ["Paris"]) == 0.0
    # accuracy (containment) gives credit where the rule does not, on whole words only
    assert M.accuracy("Yes, both are American. [1]", ["yes"]) == 1.0
    assert M.accuracy("It is not known.", ["no"]) == 0.0


def test_accuracy_containment():
    assert M.accuracy("She served as Chief of Protocol [2].", ["Chief of Protocol"]) == 1.0
    assert M.accuracy("She was an ambassador.", ["Chief of Protocol"]) == 0.0
    assert M.accuracy("The year was 1969.", ["1969", "nineteen sixty-nine"]) == 1.0
    assert M.accuracy("In 19690", ["1969"]) == 0.0


def test_strip_citations_and_sources():
    text = "Paris is the capital [1][2, 3].\n\nSources:\n[1] http://x\n"
    assert M.strip_citations(text) == "Paris is the capital ."
    assert M.markers("It is [1][2, 3] and [2].") == [1, 2, 3]


def test_title_recall():
    assert M.title_recall(["Kiss and Tell (1945 film)", "Shirley Temple"],
                          ["shirley temple", "Meet Corliss Archer"]) == 0.5
    assert M.title_recall(["A", "B"], ["b", "a!"]) == 1.0
    assert M.title_recall([], ["A"]) is None


def test_answer_in_texts():
    assert M.answer_in_texts(["Chief of Protocol"], ["She was the Chief of Protocol.", "x"]) == 1.0
    assert M.answer_in_texts(["Chief of Protocol"], ["She was an ambassador."]) == 0.0
    assert M.answer_in_texts(["yes"], ["yes it is"]) is None  # yes/no are never spelled out in evidence


def test_citation_quality_hand_checked():
    page = "Shirley Temple served as Chief of Protocol of the United States from 1976 to 1977."
    cites = [
        {"n": 1, "url": "u1", "quote": "Shirley Temple served as Chief of Protocol of the United States"},
        {"n": 2, "url": "u2", "quote": "Kiss and Tell is a 1945 comedy film."},
    ]
    text = ("Shirley Temple served as Chief of Protocol [1]. "
            "She starred in Kiss and Tell [2]. "
            "She liked ice cream [1]. "
            "She also sang.")
    cq = M.citation_quality(text, cites, {"u1": page})
    # pairs: (s1, 1) valid; (s2, 2): content words shirl? no -> 'starr','kiss','tell' vs quote kiss,tell,1945,comed,film
    #   -> 2/3 >= 0.5 valid; (s3, 1): 'liked','ice','cream' none in quote -> invalid. 3 pairs, 2 valid.
    assert (cq.pairs, cq.valid_pairs) == (3, 2)
    assert cq.precision == pytest.approx(2 / 3)
    # sentences with content words: 4; supported: s1, s2 -> 2/4
    assert (cq.sentences, cq.supported_sentences) == (4, 2)
    assert cq.recall == pytest.approx(0.5)


def test_citation_quote_must_be_on_its_page_and_number_must_exist():
    cites = [{"n": 1, "url": "u1", "quote": "Paris is the capital of France"}]
    cq = M.citation_quality("Paris is the capital of France [1]. It is large [7].", cites,
                            {"u1": "Lyon is a city in France."})
    reasons = [d["reason"] for d in cq.details]
    assert reasons == ["quote not on page", "no such citation"]
    assert cq.precision == 0.0 and cq.recall == 0.0
    # a marker at the start of the next sentence belongs to the sentence before it
    assert M.split_sentences("Paris is big. [1] It is old.") == ["Paris is big. [1]", "It is old."]


def test_answer_without_citations():
    cq = M.citation_quality("Paris is the capital.", [])
    assert cq.precision is None and cq.recall == 0.0


def test_bootstrap_ci():
    est = M.bootstrap_ci([1.0] * 10)
    assert (est.mean, est.lo, est.hi, est.n) == (1.0, 1.0, 1.0, 10)
    est = M.bootstrap_ci([0.0, 1.0] * 50, resamples=2000)
    assert est.mean == 0.5 and est.lo < 0.5 < est.hi
    assert 0.38 < est.lo < 0.45 and 0.55 < est.hi < 0.62  # ~ 0.5 +- 1.96 * 0.05
    assert M.bootstrap_ci([0.3, 0.7], seed=1) == M.bootstrap_ci([0.3, 0.7], seed=1)  # seeded: reproducible
    est = M.bootstrap_ci([None, 0.5, float("nan")])
    assert (est.mean, est.lo, est.n) == (0.5, None, 1)
    assert M.bootstrap_ci([]).mean is None
    assert M.bootstrap_ci([0.25, 0.75]).fmt() .startswith("50.0 [")
    assert not math.isnan(M.percentile([1.0, 2.0, 3.0], 50))


def test_citation_check_ignores_restated_question_and_page_furniture():
    page = ("Kiss and Tell is a 1945 American comedy film starring then 17-year-old Shirley Temple as Corliss "
            "Archer. In the film, two teenage girls cause their parents much concern.")
    # the extractor kept the page title and the site's tagline after the article
    quote = page + "\nKiss and Tell (1945 film)\nFrom LocalWiki, the free local encyclopedia"
    assert M.on_page_part(quote, page) == M._norm_space(page.split(" In the film")[0]) + " " + \
        M._norm_space("In the film, two teenage girls cause their parents much concern.")
    assert M.on_page_part("Paris is in France. Lyon too.", page) is None
    cites = [{"n": 1, "url": "u", "quote": quote}]
    question = "Who portrayed Corliss Archer in the film Kiss and Tell?"
    text = ("The woman who portrayed Corliss Archer in the film Kiss and Tell was the wife of a sailor [1]. "
            "Shirley Temple played Corliss Archer [1]. "
            "From LocalWiki, the free local encyclopedia [1].")
    cq = M.citation_quality(text, cites, {"u": page}, question=question)
    # s1: beyond the question only 'wife', 'sailo' -> unsupported; s2: 'shirl', 'templ', 'playe' -> 2/3 supported;
    # s3: the tagline is not on the page, so it supports nothing
    assert [d["valid"] for d in cq.details] == [False, True, False]
    # without the question, s1 would pass on the words it copies from the question (7 of 9)
    assert M.citation_quality(text, cites, {"u": page}).details[0]["valid"]
