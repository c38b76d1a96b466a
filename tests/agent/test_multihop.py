"""The multi-hop helpers on their own: the bridge entity a note adds, the evidence chosen for the answer, the filter
for sentences copied from the prompt's examples, fresh sub-question ids, and the state's reducers."""

from agent.answering import drop_example_echo
from agent.evidence import Evidence, EvidencePool
from agent.planning import SubQuestion, clean_plan, new_words
from agent.state import add_evidence, add_steps, add_unique, merge_by_key
from agent.steps.plan import reviewed_plan
from agent.steps.reflect import unseen
from agent.types import Step

Q = "What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?"


def ev(id: int, title: str, text: str, score: float = 0.5, url: str | None = None) -> Evidence:
    return Evidence(id, url or f"https://x.org/{id}", title, text, 0, len(text), score, "q0")


# ---- new_words: the bridge entity ------------------------------------------------------------------------------
def test_new_words_gives_the_entity_the_note_adds():
    assert new_words("Shirley Temple [2]", "Who portrayed Corliss Archer in Kiss and Tell?") == "Shirley Temple"
    assert new_words("The woman who portrayed Corliss Archer is Shirley Temple [2]",
                     "Who portrayed Corliss Archer?") == "woman Shirley Temple"


def test_new_words_ignores_what_was_asked_citations_and_unknown():
    assert new_words("unknown", Q) == ""
    assert new_words("Unknown.", Q) == ""
    assert new_words("", Q) == ""
    assert new_words("Corliss Archer [1]", Q) == ""  # nothing new
    assert new_words("Kiss and Tell [3] Shirley Temple", Q) == ""  # only the text before the first citation


def test_new_words_keeps_years_and_limits_the_length():
    assert new_words("born in 1928 [1]", "When was Shirley Temple born?") == "1928"
    assert len(new_words("Alpha Bravo Charlie Delta Echo Foxtrot Golf Hotel", "x", limit=3).split()) == 3


# ---- EvidencePool.select: what the answer prompt shows ----------------------------------------------------------
def count(text: str) -> int:
    return len(text.split())


def test_select_puts_cited_evidence_first_then_coverage_then_score():
    items = [ev(1, "Jaws", "Jaws is about a shark.", 0.9),
             ev(2, "Shirley Temple", "Shirley Temple held the government position of Chief of Protocol.", 0.1),
             ev(3, "Corliss Archer", "Corliss Archer is a fictional girl portrayed in Kiss and Tell.", 0.2)]
    pool = EvidencePool(items)
    chosen, cut = pool.select(Q, ["Shirley Temple [2]"], limit=3, token_budget=1000, count_tokens=count)
    assert [e.id for e in chosen] == [2, 3, 1] and cut == 0
    chosen, _ = pool.select(Q, [], limit=3, token_budget=1000, count_tokens=count)
    assert chosen[0].id == 3  # covers most of the question
    assert chosen[-1].id == 1  # covers nothing: last despite the best reader score


def test_select_respects_the_limit_and_the_token_budget():
    items = [ev(i, f"T{i}", "word " * 20, score=i / 10) for i in range(1, 6)]
    chosen, cut = EvidencePool(items).select("question", [], limit=2, token_budget=1000, count_tokens=count)
    assert [e.id for e in chosen] == [5, 4] and cut == 0
    chosen, cut = EvidencePool(items).select("question", [], limit=5, token_budget=60, count_tokens=count)
    assert len(chosen) == 2 and cut == 3  # each costs 21 + 8 tokens


def test_the_pool_keeps_a_passage_once():
    class P:
        url, title, text, start, end, score = "https://x.org/a", "A", "text", 0, 4, 0.3

    pool = EvidencePool()
    first, again = pool.add(P(), "q1"), pool.add(P(), "q2")
    assert first is again and len(pool) == 1 and pool.get(1) is first and pool.get(2) is None


# ---- the example-echo filter ------------------------------------------------------------------------------------
def test_a_sentence_copied_from_the_worked_example_is_dropped():
    shown = [ev(1, "Shirley Temple", "Shirley Temple served as Chief of Protocol of the United States.")]
    text = ("Jaws was directed by Steven Spielberg, who was born in Cincinnati, Ohio [2]. "
            "Shirley Temple served as Chief of Protocol [1].")
    assert drop_example_echo(text, shown) == "Shirley Temple served as Chief of Protocol [1]."


def test_an_example_sentence_the_evidence_also_says_is_kept():
    shown = [ev(1, "Jaws (film)", "Jaws is a 1975 American thriller film directed by Steven Spielberg.")]
    text = "Jaws was directed by Steven Spielberg [1]."
    assert drop_example_echo(text, shown) == text


# ---- fresh sub-question ids -------------------------------------------------------------------------------------
def test_a_plan_never_gives_two_sub_questions_the_same_id():
    subs, _ = clean_plan([{"id": "q2", "question": "Who portrayed Corliss Archer?"},
                          {"question": "What position did Shirley Temple hold in government?"},
                          {"id": "q2", "question": "Which film featured Corliss Archer?"}], Q, 3)
    ids = [s.id for s in subs]
    assert len(ids) == len(set(ids)) == 4, ids


def test_a_reviewed_plan_keeps_the_question_first_and_the_limit():
    subs = reviewed_plan(Q, [" ", Q, "a?", "b?", "c?"], limit=2)
    assert [(s.id, s.question) for s in subs] == [("q0", Q), ("q1", "a?"), ("q2", "b?")]


def test_reflection_skips_what_was_asked_in_any_word_order():
    assert unseen(["Temple Shirley born?", "When was Shirley Temple born?", "new one", "another", "third"],
                  ["shirley temple born?"], limit=2) == ["When was Shirley Temple born?", "new one"]


# ---- reducers -------------------------------------------------------------------------------------------------
def test_reducers_join_parallel_updates():
    a, b = SubQuestion("q1", "a?"), SubQuestion("q1", "a?", status="done", note="x")
    assert merge_by_key({"q1": a}, {"q1": b}) == {"q1": b}
    assert [e.id for e in add_evidence([ev(2, "B", "b")], [ev(1, "A", "a"), ev(2, "B", "b")])] == [1, 2]
    late, early = Step("read", "x", detail={"t0": 2.0}), Step("search", "y", detail={"t0": 1.0})
    assert add_steps([late], [early]) == [early, late]
    assert add_unique(["w1"], ["w1", "w2", "w2"]) == ["w1", "w2"]
