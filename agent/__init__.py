"""The agent: a LangGraph planner that searches, fetches and reads, then answers with checked citations."""

from agent.api import SearchAgent
from agent.errors import AgentError
from agent.settings import AgentSettings
from agent.types import Answer, Citation, Event, Step

__all__ = ["SearchAgent", "AgentSettings", "AgentError", "Answer", "Citation", "Event", "Step"]
