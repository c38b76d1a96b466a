"""What a user sets in the sidebar (model, search provider, mode, budgets, ...), kept in the database.

Defaults come from the MOESEARCH_* environment (the same settings the CLI reads), so `MOESEARCH_MODE=quick moesearch
ui` starts in quick mode; once a user changes something in the sidebar, the stored value wins.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

MODEL_EMBEDDED = "embedded"
MODEL_GGUF = "GGUF file"
MODEL_OPENAI = "OpenAI-compatible server"
TIME_RANGES = ["any", "day", "week", "month", "year"]


class Prefs(BaseModel):
    model: str = MODEL_EMBEDDED  # embedded | a preset name | MODEL_GGUF | MODEL_OPENAI
    gguf_path: str = ""
    openai_url: str = "http://127.0.0.1:8080/v1"
    provider: Literal["local", "searxng"] = "local"
    searxng_url: str = "http://127.0.0.1:8888"
    time_range: str = "any"
    mode: Literal["quick", "deep"] = "quick"
    rounds: int = Field(2, ge=1, le=6)
    max_searches: int = Field(6, ge=1, le=50)
    max_pages: int = Field(8, ge=0, le=50)
    answer_tokens: int = Field(256, ge=16, le=4096)
    deadline_s: float = Field(180.0, gt=0, le=3600)
    review_plan: bool = False

    def model_settings_overrides(self) -> dict[str, Any]:
        if self.model == MODEL_OPENAI:
            return {"backend": "openai", "openai_url": self.openai_url.strip()}
        # a model file: llama.cpp, or the torch engine when the environment asks for it (never the HTTP backend)
        from model_runtime.settings import ModelSettings

        backend = ModelSettings().backend
        backend = "llamacpp" if backend == "openai" else backend
        if self.model == MODEL_GGUF:
            return {"model": self.gguf_path.strip(), "backend": backend}
        return {"model": self.model, "backend": backend}

    def agent_settings_overrides(self) -> dict[str, Any]:
        return {"mode": self.mode, "rounds": self.rounds, "max_searches": self.max_searches,
                "max_pages": self.max_pages, "answer_tokens": self.answer_tokens, "deadline_s": self.deadline_s,
                "review_plan": False,  # the app reviews the plan itself (agent.plan, then plan=[...])
                "time_range": None if self.time_range == "any" else self.time_range}

    def retrieval_settings_overrides(self) -> dict[str, Any]:
        out: dict[str, Any] = {"search_provider": self.provider}
        if self.provider == "searxng":
            out["searxng_url"] = self.searxng_url.strip()
        return out


def model_choice(name: str) -> dict[str, Any]:
    """The sidebar's model fields for a model name: 'embedded', a preset, or a .gguf path."""
    name = name.strip()
    if name.endswith(".gguf") or "/" in name:
        return {"model": MODEL_GGUF, "gguf_path": name}
    return {"model": name}


def env_defaults() -> Prefs:
    """Prefs as the MOESEARCH_* environment sets them (what `moesearch ui` passes on)."""
    values: dict[str, Any] = {}
    try:
        from agent.settings import AgentSettings

        a = AgentSettings()
        values.update(mode=a.mode if a.mode in ("quick", "deep") else "quick", rounds=a.rounds,
                      max_searches=a.max_searches, max_pages=a.max_pages, answer_tokens=a.answer_tokens,
                      deadline_s=a.deadline_s or 180.0, time_range=a.time_range or "any", review_plan=a.review_plan)
    except Exception:  # noqa: BLE001 - bad environment values: fall back to our defaults, the sidebar shows them
        pass
    try:
        from model_runtime.settings import ModelSettings

        m = ModelSettings()
        if m.backend == "openai":
            values.update(model=MODEL_OPENAI, openai_url=m.openai_url)
        else:
            values.update(model_choice(m.model))
    except Exception:  # noqa: BLE001
        pass
    try:
        from retrieval.settings import RetrievalSettings

        r = RetrievalSettings()
        values.update(provider=r.search_provider)
        if r.searxng_url:
            values.update(searxng_url=r.searxng_url)
    except Exception:  # noqa: BLE001
        pass
    return _valid(values, Prefs())


def _valid(values: dict[str, Any], base: Prefs) -> Prefs:
    """Apply each value that validates; drop the ones that do not (a stored value from an older version)."""
    merged = base.model_dump()
    for k, v in values.items():
        if k not in merged:
            continue
        try:
            Prefs.model_validate(merged | {k: v})
        except ValidationError:
            continue
        merged[k] = v
    return Prefs.model_validate(merged)


def load_prefs(stored: dict[str, Any]) -> Prefs:
    return _valid(stored.get("prefs") or {}, env_defaults())
