"""Short answers on the real embedded model and the real default corpus, for each kind of question people ask:
a comparison (decided in code from the values the sources state), yes/no, and a bridge question. Each short answer
is non-empty and supported by its citations."""

from __future__ import annotations

import pytest

from agent.compare import _norm

CASES = [  # (question, kind, the short answer expected, or None: any supported one)
    ("Who is older, Annie Morton or Terry Richardson?", "comparison", "Terry Richardson"),
    ("Which tower is taller, 712 Fifth Avenue or Manhattan Life Insurance Building?", "comparison",
     "712 Fifth Avenue"),
    ("Are Giuseppe Verdi and Ambroise Thomas both Opera composers ?", "yes_no", "yes"),
    ("Are Local H and For Against both from the United States?", "yes_no", "yes"),
    ('What screenwriter with credits for "Evolution" co-wrote a film starring Nicolas Cage and Téa Leoni?', "bridge",
     "David Weissman"),
    ("What year did Guns N Roses perform a promo for a movie starring Arnold Schwarzenegger as a former New York "
     "Police detective?", "bridge", "1999"),
]


@pytest.mark.parametrize("question, kind, expected", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_short_answer_is_given_and_supported_by_its_citations(local_agent, question, kind, expected):
    answer = local_agent.ask(question, mode="quick")
    assert answer.short_answer == expected, (answer.short_answer, answer.text)
    assert answer.settled and answer.citations
    if kind != "yes_no":  # the words themselves are in a cited passage
        assert any(_norm(expected) in _norm(c.title + " " + c.quote) for c in answer.citations)
    if kind == "comparison":  # both values cited, the decision said to be computed
        assert len(answer.citations) == 2 and "compared from the values the sources state" in answer.text
    assert answer.follow_ups and not any("What else is known about" in q for q in answer.follow_ups)
