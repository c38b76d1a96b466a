"""The plan a model writes is checked and repaired: a weak model's plan cannot make things worse."""

from agent.planning import SubQuestion, clean_plan, ready, resolve

Q = "What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?"


def test_question_itself_always_comes_first():
    subs, problems = clean_plan({"sub_questions": [
        {"id": "q1", "question": "Who portrayed Corliss Archer in Kiss and Tell?", "depends_on": []},
        {"id": "q2", "question": "What government position did {q1} hold?", "depends_on": ["q1"]}]}, Q, 3)
    assert [s.id for s in subs] == ["q0", "q1", "q2"]
    assert subs[0].question == Q
    assert subs[2].depends_on == ["q1"]
    assert problems == []


def test_useless_duplicate_and_malformed_entries_are_dropped():
    subs, problems = clean_plan({"sub_questions": [
        {"id": "q1", "question": Q, "depends_on": []},  # the question again
        {"id": "q2", "question": "What is the weather like on Mars today?", "depends_on": []},  # off topic
        {"id": "q3", "question": 42, "depends_on": []},  # not text
        {"id": "q4", "question": "Who played Corliss Archer?", "depends_on": ["q9", "q4"]}]}, Q, 4)
    assert [s.question for s in subs] == [Q, "Who played Corliss Archer?"]
    assert subs[1].depends_on == []  # unknown and self dependencies removed (no cycles possible)
    assert len(problems) == 3


def test_anything_that_is_not_a_plan_falls_back_to_the_question():
    for raw in (None, "nonsense", {"steps": []}, {"sub_questions": "x"}):
        subs, problems = clean_plan(raw, Q, 3)
        assert [s.question for s in subs] == [Q]
    assert clean_plan({"sub_questions": []}, Q, 3)[0][0].id == "q0"


def test_at_most_the_allowed_number_of_sub_questions():
    raw = {"sub_questions": [{"id": f"q{i}", "question": f"Corliss Archer film {i} cast", "depends_on": []}
                             for i in range(1, 7)]}
    assert len(clean_plan(raw, Q, 2)[0]) == 3  # q0 + 2


def test_dependencies_make_a_dag_and_answers_fill_the_query():
    q1 = SubQuestion("q1", "Who portrayed Corliss Archer in Kiss and Tell?")
    q2 = SubQuestion("q2", "What government position did {q1} hold?", ["q1"])
    assert ready([q1, q2]) == [q1]
    q1.status, q1.note = "done", "Shirley Temple [3]"
    assert ready([q1, q2]) == [q2]
    assert resolve(q2, {"q1": q1}) == "What government position did Shirley Temple hold?"
    q1.note = "unknown"
    assert resolve(q2, {"q1": q1}) == "What government position did hold?"  # an unknown answer adds nothing
    q3 = SubQuestion("q3", "Which office did she hold?", ["q1"])
    q1.note = "Shirley Temple. She was an actress [2]"
    assert resolve(q3, {"q1": q1}) == "Which office did she hold? Shirley Temple actress"


def test_a_plan_without_depends_on_takes_dependencies_from_the_references():
    # the plan schema leaves depends_on optional; "{q1}" in a question is a dependency all the same
    subs, problems = clean_plan({"sub_questions": [
        {"id": "q1", "question": "Who portrayed Corliss Archer in Kiss and Tell?"},
        {"id": "q2", "question": "What government position did {q1} hold?"}]}, Q, 3)
    assert [s.depends_on for s in subs] == [[], [], ["q1"]] and problems == []
