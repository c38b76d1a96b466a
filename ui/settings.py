"""UI settings, read from MOESEARCH_* environment variables (or passed explicitly).

Only what the process needs before the app starts lives here (where the database is, which address to serve on);
what a user changes in the sidebar (model, search provider, mode, budgets) is stored in the database (`ui_setting`).
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("moesearch"))


class UISettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOESEARCH_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, description="indexes, the database")
    db: Path | None = Field(None, description="the SQLite file shared by every package; default $DATA_DIR/moesearch.db")
    ui_host: str = Field("127.0.0.1", description="address `moesearch ui` listens on")
    ui_port: int = Field(8501, ge=1, le=65535, description="port `moesearch ui` listens on")
    ui_max_upload_mb: int = Field(20, ge=1, description="largest file the app reads")

    @model_validator(mode="after")
    def _defaults(self) -> "UISettings":
        if self.db is None:
            self.db = self.data_dir / "moesearch.db"
        return self
