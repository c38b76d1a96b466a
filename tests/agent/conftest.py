"""One agent on the real embedded model and the real default corpus, shared by the agent tests."""

from __future__ import annotations

import pytest

SAMPLE = "What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?"


@pytest.fixture(scope="session")
def agent_data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("agent-data")


@pytest.fixture(scope="session")
def retrieval_settings(agent_data_dir):
    from retrieval import RetrievalSettings

    return RetrievalSettings(data_dir=agent_data_dir, db=agent_data_dir / "moesearch.db")


@pytest.fixture(scope="session")
def local_agent(embedded_llm, retrieval_settings):
    from agent import AgentSettings, SearchAgent

    agent = SearchAgent(AgentSettings(deadline_s=600), llm=embedded_llm, retrieval_settings=retrieval_settings)
    yield agent
    agent.close()
