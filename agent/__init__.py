"""The agent: a LangGraph planner that searches, fetches and reads, then answers with checked citations."""

from agent.api import SearchAgent
from agent.errors import AgentError
from agent.settings import AgentSettings
from agent.types import (MODES, Answer, AnswerReady, Citation, ErrorRaised, Event, Mode, NoteWritten, PageFetched,
                         PageRead, Payload, PlanMade, Reflected, SearchDone, Step, Token, WarningRaised)

__all__ = ["SearchAgent", "AgentSettings", "AgentError", "Answer", "Citation", "Event", "Step", "Mode", "MODES",
           "Payload", "PlanMade", "SearchDone", "PageFetched", "PageRead", "NoteWritten", "Reflected", "Token",
           "WarningRaised", "AnswerReady", "ErrorRaised"]
