"""Retrieval settings, read from MOESEARCH_* environment variables (or passed explicitly)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

try:  # pydantic-settings >= 2.7: take "a,b" from the environment as a list
    from pydantic_settings import NoDecode
except ImportError:  # pragma: no cover
    NoDecode = None  # type: ignore[assignment,misc]

HostList = Annotated[list[str], NoDecode] if NoDecode is not None else list[str]

DEFAULT_USER_AGENT = "moesearch/0.1 (local AI search engine; +https://github.com/moesearch/moesearch)"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("moesearch"))


class RetrievalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOESEARCH_", extra="ignore")

    # shared
    data_dir: Path = Field(default_factory=default_data_dir, description="holds indexes and the database")
    db: Path | None = Field(None, description="the one SQLite file; default $MOESEARCH_DATA_DIR/moesearch.db")

    # search
    search_provider: Literal["local", "searxng"] = "local"
    searxng_url: str | None = Field(None, description="base URL of a SearXNG instance (or `moesearch web serve`)")
    searxng_timeout_s: float = Field(15.0, gt=0)
    corpus: Path | None = Field(None, description="JSONL file or folder for the local index; None = shipped corpus")
    index_dir: Path | None = Field(None, description="where the local index lives; default under data_dir/index")
    embed_model: Path | None = Field(None, description="sentence-transformers model folder; None = bundled MiniLM")
    embed_batch_size: int = Field(64, ge=1)
    embed_max_seq_length: int = Field(256, ge=16)
    max_query_chars: int = Field(1000, ge=1)
    index_passage_words: int = Field(120, ge=10, description="target words per indexed passage")
    rrf_k: int = Field(60, ge=1, description="k of reciprocal rank fusion (mode rrf)")
    fusion_bm25_weight: float = Field(0.5, ge=0, description="weight of z-normalised BM25 next to dense similarity")

    # fetch
    fetch_timeout_connect_s: float = Field(5.0, gt=0)
    fetch_timeout_read_s: float = Field(10.0, gt=0)
    fetch_timeout_total_s: float = Field(30.0, gt=0)
    fetch_max_bytes: int = Field(5_000_000, ge=1024, description="max decompressed body size")
    fetch_max_redirects: int = Field(5, ge=0)
    fetch_max_concurrency: int = Field(16, ge=1)
    fetch_per_host_concurrency: int = Field(4, ge=1)
    fetch_retries: int = Field(2, ge=0, description="retries on 429/5xx, honouring Retry-After")
    fetch_backoff_s: float = Field(0.5, ge=0)
    fetch_max_retry_after_s: float = Field(10.0, ge=0)
    fetch_respect_robots: bool = True
    fetch_allow_hosts: HostList = Field(default_factory=list, description="hosts (or host:port) allowed even if private")
    fetch_cache: bool = True
    cache_ttl_s: float = Field(24 * 3600, ge=0)
    user_agent: str = DEFAULT_USER_AGENT

    # reader
    passage_target_words: int = Field(100, ge=10)
    passage_max_words: int = Field(150, ge=10)
    passage_overlap_sentences: int = Field(1, ge=0)
    reader_max_embed_passages: int = Field(64, ge=1, description="passages embedded per page (BM25's best)")
    reader_extract_timeout_s: float = Field(10.0, gt=0, description="most seconds extracting one page's text; a "
                                            "slower HTML page falls back to its tag-stripped text")

    @field_validator("fetch_allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v):
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                import json

                return json.loads(v)
            return [h.strip() for h in v.split(",") if h.strip()]
        return v

    @model_validator(mode="after")
    def _defaults(self) -> RetrievalSettings:
        if self.db is None:
            self.db = self.data_dir / "moesearch.db"
        if self.passage_max_words < self.passage_target_words:
            self.passage_max_words = self.passage_target_words
        return self

    def allowed_origins(self) -> set[tuple[str, int | None]]:
        """(host, port) pairs the fetcher may reach even when they are private: the SearXNG origin and
        ``fetch_allow_hosts`` (port None = any port)."""
        out: set[tuple[str, int | None]] = set()
        if self.searxng_url:
            parts = urlsplit(self.searxng_url)
            if parts.hostname:
                port = parts.port or (443 if parts.scheme == "https" else 80)
                out.add((parts.hostname.lower(), port))
        for h in self.fetch_allow_hosts:
            h = h.strip().lower()
            if not h:
                continue
            if "://" in h:
                parts = urlsplit(h)
                out.add((parts.hostname or "", parts.port))
            elif h.startswith("[") or h.count(":") == 1:
                parts = urlsplit("//" + h)
                out.add((parts.hostname or "", parts.port))
            else:
                out.add((h.strip("[]"), None))
        return out
