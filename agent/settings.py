"""Agent settings, read from MOESEARCH_* environment variables (or passed explicitly)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

TimeRange = Literal["day", "week", "month", "year"]


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOESEARCH_", extra="ignore")

    mode: Literal["deep", "quick", "closed-book"] = Field(
        "deep", description="deep: plan + act + reflect; quick: one search round; closed-book: no retrieval")
    rounds: int = Field(2, ge=1, le=6, description="deep mode: most rounds of actions (plan, then reflect adds more)")
    max_sub_questions: int = Field(3, ge=1, le=6, description="most sub-questions the planner may write per round")
    max_searches: int = Field(6, ge=1, description="most searches per question")
    max_pages: int = Field(8, ge=0, description="most pages fetched per question")
    pages_per_search: int = Field(3, ge=1, description="pages fetched from the top hits of one search")
    search_k: int = Field(5, ge=1, le=50, description="hits asked of the search engine per search")
    passages_per_page: int = Field(3, ge=1, description="passages kept per page read")
    max_evidence: int = Field(8, ge=1, description="most passages shown to the model when answering")
    evidence_tokens: int | None = Field(
        None, ge=64, description="token budget for evidence in the answer prompt; default: fit the context window")
    answer_tokens: int = Field(256, ge=16, description="most tokens the answer may have")
    deadline_s: float | None = Field(
        180.0, gt=0, description="wall-clock deadline per question; at the deadline the agent answers from what it has")
    time_range: TimeRange | None = Field(None, description="only search results from the past day/week/month/year")
    language: str | None = Field(None, description="language code passed to the search engine, e.g. 'en'")
    review_plan: bool = Field(False, description="stop after the plan so the caller can approve or edit it")
    notes: bool = Field(True, description="deep mode: the model writes a note per sub-question (else extractive)")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
