"""Question kinds and comparisons decided in code from the values passages state (agent/compare.py), the short
answer's check (agent/short_answer.py) and follow-ups from the evidence (agent/follow_ups.py): no model needed."""

import pytest

from agent.compare import born_date, decide, explain, numbers, question_kind
from agent.evidence import Evidence
from agent.follow_ups import follow_ups
from agent.short_answer import candidate, check, first_clause


def ev(id: int, title: str, text: str, score: float = 0.5) -> Evidence:
    return Evidence(id, f"https://x.org/{id}", title, text, 0, len(text), score, "q0")


MORTON = ev(1, "Annie Morton", "Annie Morton (born October 8, 1970) is an American model born in Pennsylvania. She has "
            "been photographed by Helmut Newton and Terry Richardson.")
RICHARDSON = ev(2, "Terry Richardson", 'Terrence "Uncle Terry" Richardson (born August 14, 1965) is an American '
                "fashion and portrait photographer.")
FORD = ev(3, "Aleksander Ford", "Aleksander Ford (24 November 1908 – 4 April 1980) was a Polish film director.")
TRAPERO = ev(4, "Pablo Trapero", "Pablo Trapero (born 4 October 1971) is an Argentine film director.")
ARTHURS = ev(5, "Arthur's Magazine", "Arthur's Magazine (1844–1846) was an American literary periodical published in "
             "Philadelphia in the 19th century.")
FIRST = ev(6, "First for Women", "First for Women is a woman's magazine published by Bauer Media Group in the USA. "
           "The magazine was started in 1989.")
TOWER = ev(7, "712 Fifth Avenue", "712 Fifth Avenue is a 53-story, 650 ft (198 m) skyscraper in Midtown Manhattan.")
LIFE = ev(8, "Manhattan Life Insurance Building", "The Manhattan Life Insurance Building was a 348 ft (106 m) "
          "skyscraper in New York City.")
NILE = ev(9, "Nile", "The Nile is a major north-flowing river in northeastern Africa, about 6,650 km (4,130 mi) long.")
AMAZON = ev(10, "Amazon River", "The Amazon River in South America is the largest river by discharge; it is about "
            "6,400 km (4,000 mi) long.")
EUCRYPHIA = ev(11, "Eucryphia", "Eucryphia is a small genus of trees. There are seven species, two in South America.")
LEPIDOZAMIA = ev(12, "Lepidozamia", "Lepidozamia is a genus of two species of cycad, both endemic to Australia.")
SHIRLEY = ev(13, "Shirley Temple", "Shirley Temple Black (April 23, 1928 – February 10, 2014) was an American actress "
             "who served as Chief of Protocol of the United States.")
JAWS = ev(14, "Jaws (film)", "Jaws is a 1975 American thriller film directed by Steven Spielberg.")
ALIEN = ev(15, "Alien (film)", "Alien is a 1979 science fiction horror film directed by Ridley Scott.")
PARIS = ev(16, "Paris", "Paris is the capital of France, with an area of 105 km2 and 2.1 million residents.")
ROME = ev(17, "Rome", "Rome is the capital city of Italy, with an area of 1,285 km2.")


@pytest.mark.parametrize("question, kind, entities, dimension", [
    ("Who is older, Annie Morton or Terry Richardson?", "comparison", ("Annie Morton", "Terry Richardson"), "birth"),
    ("Which magazine was started first Arthur's Magazine or First for Women?", "comparison",
     ("Arthur's Magazine", "First for Women"), "date"),
    ("Who was born first, Pablo Trapero or Aleksander Ford?", "comparison", ("Pablo Trapero", "Aleksander Ford"),
     "birth"),
    ("Which is taller, the Eiffel Tower or the Empire State Building?", "comparison",
     ("Eiffel Tower", "Empire State Building"), "length"),
    ("Which Genus has more species Eucryphia or Lepidozamia ?", "comparison", ("Eucryphia", "Lepidozamia"), "count"),
    ("Is Rome larger than Paris?", "comparison", ("Rome", "Paris"), "size"),
    ("Are Local H and For Against both from the United States?", "yes_no", (), ""),
    ("Is the Marsilea or the Brabejum the genus of more individual species of plants?", "other", (), ""),
    ("What government position was held by the woman who portrayed Corliss Archer?", "other", (), ""),
])
def test_question_kind(question, kind, entities, dimension):
    k = question_kind(question)
    assert (k.kind, k.entities, k.dimension) == (kind, entities, dimension)


def test_dates_in_the_forms_wikipedia_uses():
    assert born_date(MORTON.text) == ((1970, 10, 8), "October 8, 1970")
    assert born_date(FORD.text) == ((1908, 11, 24), "24 November 1908")  # a life span
    assert born_date("Sam Smith (born May 1992) is a singer.") == ((1992, 5, 0), "May 1992")
    assert born_date("Jane Doe is a painter.") is None


def test_numbers_with_units_are_converted_to_one_base_unit():
    found = numbers("It is 330 metres (1,083 ft) tall, covers 105.4 km2 and 2.1 million people live there.")
    assert [(d, round(v, 1), said) for d, v, said, _ in found] == [
        ("length", 330.0, "330 metres"), ("length", 330.1, "1,083 ft"), ("area", 105.4, "105.4 km2"),
        ("count", 2100000.0, "2.1 million")]


@pytest.mark.parametrize("question, evidence, winner", [
    ("Who is older, Annie Morton or Terry Richardson?", [MORTON, RICHARDSON], "Terry Richardson"),
    ("Who is younger, Annie Morton or Terry Richardson?", [RICHARDSON, MORTON], "Annie Morton"),
    ("Who was born first, Pablo Trapero or Aleksander Ford?", [TRAPERO, FORD], "Aleksander Ford"),
    ("Which magazine was started first Arthur's Magazine or First for Women?", [FIRST, ARTHURS], "Arthur's Magazine"),
    ("Which film came out first, Alien or Jaws?", [ALIEN, JAWS], "Jaws"),
    ("Which film is more recent, Jaws or Alien?", [ALIEN, JAWS], "Alien"),
    ("Which tower is taller, 712 Fifth Avenue or Manhattan Life Insurance Building?", [LIFE, TOWER],
     "712 Fifth Avenue"),
    ("Which river is longer, the Amazon River or the Nile?", [AMAZON, NILE], "Nile"),
    ("Which river is shorter, the Amazon River or the Nile?", [AMAZON, NILE], "Amazon River"),
    ("Which Genus has more species Eucryphia or Lepidozamia ?", [LEPIDOZAMIA, EUCRYPHIA], "Eucryphia"),
    ("Which city is larger, Paris or Rome?", [PARIS, ROME], "Rome"),
])
def test_comparison_decided_from_the_values(question, evidence, winner):
    d = decide(question, evidence + [SHIRLEY])
    assert d is not None and d.winner == winner
    numbers_of = {e.id: n for n, e in enumerate(evidence, 1)}
    text = explain(d, lambda e: numbers_of[e.id])
    assert text.startswith(winner) and "[1]" in text and "[2]" in text
    assert all(v.said in text and v.said in v.evidence.text for v in d.values)


def test_is_a_older_than_b_is_a_yes_no_comparison():
    assert decide("Is Annie Morton older than Terry Richardson?", [MORTON, RICHARDSON]).short_answer == "no"
    assert decide("Is Terry Richardson older than Annie Morton?", [MORTON, RICHARDSON]).short_answer == "yes"


def test_no_decision_without_both_values_or_on_a_tie():
    assert decide("Who is older, Annie Morton or Terry Richardson?", [MORTON]) is None
    assert decide("Who is older, Annie Morton or Terry Richardson?", [MORTON, SHIRLEY]) is None
    twin = ev(20, "Terry Richardson", "Terry Richardson (born 1970) is a photographer.")
    assert decide("Who is older, Annie Morton or Terry Richardson?", [MORTON, twin]) is None  # same year, no month
    assert decide("Who played Corliss Archer?", [SHIRLEY]) is None


def test_a_value_named_in_another_entitys_page_is_not_taken():
    # Annie Morton's page names Terry Richardson, but her born date is not his
    assert decide("Who is older, Annie Morton or Terry Richardson?", [MORTON, SHIRLEY]) is None


# ---- the short answer's check -----------------------------------------------------------------------------------
def test_first_clause_is_the_model_short_answer():
    assert first_clause("Cincinnati. Jaws was directed by Steven Spielberg [1].") == "Cincinnati"
    assert first_clause("Chief of Protocol [1]. She served ...") == "Chief of Protocol"
    assert first_clause("The answer is: Shirley Temple. She ...") == "Shirley Temple"
    assert first_clause("J. R. R. Tolkien. He wrote ...") == "J. R. R. Tolkien"


def test_candidate_malformed_or_long_gives_nothing():
    other, yes_no = question_kind("Who wrote it?"), question_kind("Are both A and B magazines?")
    assert candidate("", other) == ""
    assert candidate("{{{ ]]] ### }", other) == ""
    assert candidate("The film that was made in the year after the war ended in Europe was this one.", other) == ""
    assert candidate("Yes, both are magazines [1].", yes_no) == "yes"
    assert candidate("Both are magazines [1].", yes_no) == ""
    assert candidate("No. Only one is [2].", yes_no) == "no"


def test_check_keeps_only_what_the_cited_passages_support():
    other = question_kind("What government position was held by Shirley Temple?")
    assert check("Chief of Protocol", other, [SHIRLEY], True) == "Chief of Protocol"
    assert check("Secretary of State", other, [SHIRLEY], True) == ""  # not in the passage: dropped
    assert check("Chief of Protocol", other, [], True) == ""  # nothing cited
    assert check("Chief of Protocol", other, [SHIRLEY], False) == ""  # the answer did not settle it
    assert check("yes", other, [SHIRLEY], True) == ""  # yes/no only for a yes/no question
    comparison = question_kind("Who is older, Annie Morton or Terry Richardson?")
    assert check("Pennsylvania", comparison, [MORTON], True) == ""  # a comparison's answer is one of the two


# ---- follow-ups -------------------------------------------------------------------------------------------------
def test_follow_ups_are_questions_about_what_the_answer_did_not_cover():
    answer = "Terry Richardson is older. Annie Morton was born October 8, 1970 [1]; Terry Richardson ... 1965 [2]."
    out = follow_ups("Who is older, Annie Morton or Terry Richardson?", answer, [MORTON, RICHARDSON],
                     [JAWS, ev(30, "Lady Gaga x Terry Richardson", "A photo book.")])
    assert out and len(out) <= 3
    assert all(q.endswith("?") and "What else is known about" not in q and " x " not in q for q in out)
    assert not any("born" in q and ("Morton" in q or "Terry" in q) for q in out)  # the answer said that
    assert "What other films did Steven Spielberg direct?" in out


def test_follow_ups_ask_what_a_person_would():
    out = follow_ups("Who played Corliss Archer?", "Shirley Temple [1].", [SHIRLEY], [ALIEN])
    assert out[0] == "When was Shirley Temple born?"
    assert "What other films did Ridley Scott direct?" in out


def test_a_statement_answers_a_yes_no_question():
    q = "Are Local H and For Against both from the United States?"
    kind = question_kind(q)
    assert candidate("Local H and For Against are both from the United States [1].", kind, q) == "yes"
    assert candidate("Local H and For Against are not both from the United States [1].", kind, q) == "no"
    assert candidate("Local H is a band [1].", kind, q) == ""  # does not restate the question


def test_first_clause_ends_before_a_lowercase_aside_but_not_inside_a_date():
    assert first_clause("Sergio Pérez, the other Mexican driver [1].") == "Sergio Pérez"
    assert first_clause("October 8, 1970. She was born then [1].") == "October 8, 1970"
    assert first_clause("Cincinnati, Ohio [2].") == "Cincinnati, Ohio"
