"""The short answer through the whole agent, with a canned OpenAI-compatible server making the model say exactly
what each test needs (empty, malformed, unsupported, supported), over real HTTP, on documents given to read."""

from __future__ import annotations

import pytest

from retrieval.types import Document
from tests.agent.canned_llm import CannedModel

JAWS = Document("https://x.org/jaws", "Jaws (film)", "Jaws is a 1975 American thriller film directed by Steven "
                "Spielberg, based on the novel by Peter Benchley.")
SPIELBERG = Document("https://x.org/spielberg", "Steven Spielberg", "Steven Allan Spielberg (born December 18, 1946) "
                     "is an American film director, born in Cincinnati, Ohio.")
QUESTION = "In which city was the director of Jaws born?"


class Reply:
    text = ""  # what the "model" answers to every chat completion; each test sets it


@pytest.fixture(scope="module")
def canned_agent(retrieval_settings):
    from agent import AgentSettings, SearchAgent
    from model_runtime.openai_backend import OpenAICompatLLM

    with CannedModel(lambda prompt: Reply.text, piece=7, context_window=4096) as model:
        llm = OpenAICompatLLM(model.url, retries=0)
        agent = SearchAgent(AgentSettings(mode="quick", deadline_s=300), llm=llm, retrieval_settings=retrieval_settings)
        yield agent
        agent.close()


def ask(agent, reply: str, question: str = QUESTION, documents=(JAWS, SPIELBERG)):
    Reply.text = reply
    return agent.ask(question, documents=list(documents))


def test_a_supported_short_answer_is_kept_with_its_explanation(canned_agent):
    a = ask(canned_agent, "Cincinnati. Jaws was directed by Steven Spielberg [1], who was born in Cincinnati, Ohio [2].")
    assert a.short_answer == "Cincinnati"
    assert a.settled and "[1]" in a.text and "Spielberg" in a.text
    assert a.to_dict()["short_answer"] == "Cincinnati"


def test_an_unsupported_short_answer_is_dropped_and_the_explanation_stands(canned_agent):
    a = ask(canned_agent, "Los Angeles. Jaws was directed by Steven Spielberg [1], who was born in Cincinnati, "
                          "Ohio [2].")
    assert a.short_answer == ""  # no cited passage says Los Angeles
    assert "Cincinnati" in a.text and a.citations


@pytest.mark.parametrize("reply", ["", "   ", "{{{ ]]] ### }", "<<< >>>"])
def test_empty_or_malformed_model_output_gives_no_short_answer(canned_agent, reply):
    a = ask(canned_agent, reply)
    assert a.short_answer == ""
    assert a.text.strip()  # the explanation (here: the best passage quoted) still stands


def test_yes_no_needs_a_yes_no_question(canned_agent):
    a = ask(canned_agent, "Yes. Jaws is a 1975 film directed by Steven Spielberg [1].",
            question="Was Jaws directed by Steven Spielberg?")
    assert a.short_answer == "yes"
    a = ask(canned_agent, "Yes. Jaws is a 1975 film directed by Steven Spielberg [1].",
            question="Who directed Jaws?")
    assert a.short_answer == ""


def test_a_comparison_is_decided_in_code_whatever_the_model_says(canned_agent):
    morton = Document("https://x.org/morton", "Annie Morton", "Annie Morton (born October 8, 1970) is an American "
                      "model born in Pennsylvania.")
    terry = Document("https://x.org/terry", "Terry Richardson", "Terrence Richardson (born August 14, 1965) is an "
                     "American fashion and portrait photographer.")
    a = ask(canned_agent, "Annie Morton. She is older [1].", question="Who is older, Annie Morton or Terry Richardson?",
            documents=[morton, terry])
    assert a.short_answer == "Terry Richardson" and a.settled
    assert "October 8, 1970" in a.text and "August 14, 1965" in a.text and "compared" in a.text
    assert {c.title for c in a.citations} == {"Annie Morton", "Terry Richardson"}
