"""Agent settings, read from MOESEARCH_* environment variables (or passed explicitly)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.types import Mode

TimeRange = Literal["day", "week", "month", "year"]


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOESEARCH_", extra="ignore")

    mode: Mode = Field(
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
    # limits of the deep-mode steps (they were literals in the graph); the defaults suit the embedded 270M model
    reflect_new_sub_questions: int = Field(
        2, ge=0, le=6, description="deep mode: most new sub-questions one reflection adds")
    max_reviewed_sub_questions: int = Field(
        8, ge=1, le=32, description="most sub-questions of a plan the caller approved or edited (plan=[...])")
    plan_tokens_base: int = Field(60, ge=16, description="plan: token cap = plan_tokens_base + "
                                  "plan_tokens_per_sub_question x max_sub_questions")
    plan_tokens_per_sub_question: int = Field(50, ge=8, description="plan: tokens allowed per sub-question")
    note_tokens: int = Field(48, ge=8, description="deep mode: most tokens of a note per sub-question")
    note_passages: int = Field(4, ge=1, description="deep mode: best passages shown to the model to write a note")
    reflect_tokens: int = Field(120, ge=16, description="deep mode: most tokens of a reflection decision")

    @property
    def plan_tokens(self) -> int:
        return self.plan_tokens_base + self.plan_tokens_per_sub_question * self.max_sub_questions
