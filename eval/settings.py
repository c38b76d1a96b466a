"""Evaluator settings, read from MOESEARCH_* environment variables (or passed explicitly)."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("moesearch"))


class EvalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOESEARCH_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, description="indexes, the database, eval webs")
    db: Path | None = Field(None, description="the SQLite file shared by every package; default $DATA_DIR/moesearch.db")
    eval_reports_dir: Path | None = Field(None, description="where `eval report` writes; default $DATA_DIR/eval/reports")
    eval_bootstrap: int = Field(1000, ge=100, description="bootstrap resamples for confidence intervals")
    eval_max_consecutive_errors: int = Field(
        10, ge=1, description="stop a run (resumable) after this many failed questions in a row")

    @model_validator(mode="after")
    def _defaults(self) -> "EvalSettings":
        if self.db is None:
            self.db = self.data_dir / "moesearch.db"
        if self.eval_reports_dir is None:
            self.eval_reports_dir = self.data_dir / "eval" / "reports"
        return self

    @property
    def webs_dir(self) -> Path:
        """Cached local-web corpora and indexes built from datasets' own paragraphs."""
        return self.data_dir / "eval" / "webs"
