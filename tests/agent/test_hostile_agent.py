"""Issue 15 in the agent, kinds 3, 6 and 9, over real HTTP: a search (SearXNG's JSON API, served by LocalWeb) with
malformed hits among good ones, a canned OpenAI-compatible model streaming reasoning before `</think>`, and a plan
whose ids leave gaps that reflection must not reuse."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent import AgentSettings, SearchAgent
from agent.types import NoteWritten, PageFetched, PlanMade, Reflected, SearchDone, Token
from model_runtime.openai_backend import OpenAICompatLLM
from retrieval import Document, LocalWeb
from tests.agent.canned_llm import CannedModel

DOCS = [
    Document("", "Zorblax Prize", "The Zorblax Prize is an award for lunar gardening. The 2031 Zorblax Prize was won by "
             "Mira Quell, a botanist from Tromso. The prize money is paid in seeds."),
    Document("", "Mira Quell", "Mira Quell is a Norwegian botanist from Tromso who grows potatoes in lunar soil. "
             "She studied at the University of Tromso."),
    Document("", "Lunar gardening", "Lunar gardening is the practice of growing plants in lunar soil on the Moon."),
]
QUESTION = "Who won the 2031 Zorblax Prize?"
ANSWER = "Mira Quell won the 2031 Zorblax Prize [1]."

# URLs a search engine may hand back that no fetch can follow (issue 15 kind 3, and two more of the kind)
BAD_HITS = ["http://0177.0.0.1/", "http://☃.example/", "javascript:alert(1)", "http://[::1/", "http://exa mple.com/",
            "data:text/html,<h1>Zorblax Prize</h1>", "http://127.0.0.1:99999/wiki/Zorblax_Prize", "ftp://example.com/x"]


class WebWithBadHits(LocalWeb):
    """LocalWeb whose search puts malformed hits first, then the real ones."""

    def search(self, q, k=10, time_range=None):
        bad = [{"url": u, "title": "Zorblax Prize", "content": "The 2031 Zorblax Prize", "engine": "x",
                "engines": ["x"], "score": 9.0, "category": "general", "positions": [i + 1]}
               for i, u in enumerate(BAD_HITS)]
        return (bad + super().search(q, k, time_range))[:k + len(bad)]


def answer_reply(text: str):
    def reply(prompt: str) -> str:
        return text if "Answer the question from the evidence" in prompt else "unknown"
    return reply


def run(agent: SearchAgent, question: str, mode: str = "quick") -> list:
    async def collect():
        return [e async for e in agent.astream(question, mode=mode)]
    return asyncio.run(collect())


def run_twice(agent: SearchAgent, question: str) -> tuple[list, list]:
    async def both():
        return ([e async for e in agent.astream(question, mode="quick")],
                [e async for e in agent.astream(question, mode="quick")])
    return asyncio.run(both())


@pytest.fixture()
def settings_for(retrieval_settings):
    def make(web):
        return retrieval_settings.model_copy(update={"search_provider": "searxng", "searxng_url": web.search_url})
    return make


def test_malformed_search_hits_are_skipped_with_the_reason_and_the_rest_answers(settings_for):
    with WebWithBadHits(DOCS) as web, CannedModel(answer_reply(ANSWER)) as model:
        llm = OpenAICompatLLM(model.url)
        with SearchAgent(AgentSettings(search_k=len(BAD_HITS) + 3, pages_per_search=len(BAD_HITS) + 2, max_pages=3,
                                       deadline_s=60), llm=llm,
                         retrieval_settings=settings_for(web)) as agent:
            events = run(agent, QUESTION)
    fetches = [e.data for e in events if isinstance(e.data, PageFetched)]
    skipped = {f.url: f.reason for f in fetches if not f.ok}
    assert set(skipped) == set(BAD_HITS)  # every bad hit tried and skipped, none fatal
    assert all(r.startswith("skipped: ") and "\n" not in r and "Traceback" not in r and "budget" not in r
               for r in skipped.values())
    answer = events[-1].data.answer
    assert events[-1].kind == "answer" and answer.settled
    assert answer.citations[0].url == web.doc_url(DOCS[0])
    assert answer.text == ANSWER
    # refused URLs cost no page budget (3 pages for 8 bad hits): every good hit was still fetched
    good = [u for e in events if isinstance(e.data, SearchDone) for u in e.data.urls if u not in BAD_HITS]
    assert good and sorted(f.url for f in fetches if f.ok) == sorted(set(good))
    refused = [s for s in answer.trace if s.kind == "fetch" and not s.detail.get("ok")]
    assert len(refused) == len(BAD_HITS) and all(s.detail["reason"] for s in refused)


def test_the_answer_step_passes_the_deadline_left_to_extraction(settings_for, monkeypatch):
    from retrieval.reader import Reader

    limits = []
    real = Reader.extract

    def spy(self, page, timeout_s=None):
        limits.append(timeout_s)
        return real(self, page, timeout_s=timeout_s)

    monkeypatch.setattr(Reader, "extract", spy)
    with LocalWeb(DOCS) as web, CannedModel(answer_reply(ANSWER)) as model:
        with SearchAgent(AgentSettings(deadline_s=30), llm=OpenAICompatLLM(model.url),
                         retrieval_settings=settings_for(web)) as agent:
            run(agent, QUESTION)
    assert limits and all(t is not None and 0 < t <= 30 for t in limits)


# ---------- kind 6: reasoning before a closing tag the model's template opened ----------

REASONING = "The user asks about the prize. Passage [1] names the winner, so I cite it."


def shown_as_the_ui_shows(events) -> list[str]:
    """What the UI's stream shows after each Token (ui.runner applies a reset the same way)."""
    from ui.runner import Job, _follow

    job, seen = Job(1, QUESTION), []
    for e in events:
        if isinstance(e.data, Token):
            _follow(job, e.data)
            seen.append(job.text)
    return seen


@pytest.mark.parametrize("close, piece", [("</think>", 5), ("</think>", 3), ("</thinking>", 7), ("</reasoning>", 2)])
def test_reasoning_before_a_closing_tag_is_not_shown_and_the_answer_streams_after_it(settings_for, close, piece):
    output = f"{REASONING}{close}\n\n{ANSWER}"
    with LocalWeb(DOCS) as web, CannedModel(answer_reply(output), piece=piece) as model:
        llm = OpenAICompatLLM(model.url)
        with SearchAgent(AgentSettings(deadline_s=60), llm=llm, retrieval_settings=settings_for(web)) as agent:
            # one event loop for both: the SearXNG client belongs to the loop that first used it
            first, second = run_twice(agent, QUESTION)  # then the model is known to reason: held until the tag
    for events in (first, second):
        assert events[-1].kind == "answer", events[-1].data
        answer = events[-1].data.answer
        assert answer.text == ANSWER and answer.settled and "The user asks" in answer.reasoning
        seen = shown_as_the_ui_shows(events)
        assert seen[-1] == ANSWER  # the answer streamed on after the tag, and the UI ends showing only it
        assert not any("</" in s or "<" in s for s in seen)  # no tag, not even a partial "</thi"
    tokens = [e.data for e in second if isinstance(e.data, Token)]
    assert len(tokens) > 3 and not any("user asks" in t.text for t in tokens) and not any(t.reset for t in tokens)
    assert "".join(t.text for t in tokens) == ANSWER


def test_a_model_that_does_not_reason_streams_at_once():
    from agent.actions import VisibleStream

    v = VisibleStream()
    assert [t.text for t in v.feed("Mira ")] == ["Mira "] and [t.text for t in v.feed("Quell <")] == ["Quell "]
    assert [t.text for t in v.feed("b>")] == ["<b>"] and v.finish() == []


# ---------- kind 9: sub-question ids ----------

def deep_reply(prompt: str) -> str:
    if "Break the question into" in prompt:  # the plan: the model's own ids, with a gap
        return json.dumps({"sub_questions": [
            {"id": "q1", "question": "Which botanist received the 2031 Zorblax Prize?", "depends_on": []},
            {"id": "q3", "question": "What is the Zorblax Prize awarded for?", "depends_on": []}]})
    if "Decide whether the findings" in prompt:
        return json.dumps({"enough": False, "sub_questions": ["Where does the Zorblax Prize winner come from?",
                                                              "What does the Zorblax Prize winner grow?"]})
    if "Answer the question in a few words" in prompt:
        return "Mira Quell [1]" if "botanist" in prompt.rsplit("Question:", 1)[-1] else "lunar gardening [1]"
    return ANSWER


def test_reflection_adds_fresh_ids_and_no_note_is_overwritten(settings_for):
    with LocalWeb(DOCS) as web, CannedModel(deep_reply, piece=50) as model:
        with SearchAgent(AgentSettings(rounds=2, deadline_s=60), llm=OpenAICompatLLM(model.url),
                         retrieval_settings=settings_for(web)) as agent:
            events = run(agent, "Who won the 2031 Zorblax Prize and what is it for?", mode="deep")
    planned = [s["id"] for s in next(e.data for e in events if isinstance(e.data, PlanMade)).sub_questions]
    assert planned == ["q0", "q1", "q3"]  # the model's ids kept
    added = [s["id"] for e in events if isinstance(e.data, Reflected) for s in e.data.new_sub_questions]
    assert added and not set(added) & set(planned) and len(set(added)) == len(added)
    notes = [e.data for e in events if isinstance(e.data, NoteWritten)]
    ids = [n.sub_question for n in notes]
    assert len(ids) == len(set(ids)) == len(planned) + len(added)  # one note per sub-question, none overwritten
