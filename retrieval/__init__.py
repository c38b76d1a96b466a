"""moesearch retrieval: search (local corpus index or SearXNG), a safe cached fetcher, a reader that extracts and
ranks passages, and a local web for offline use. Imports nothing else of moesearch."""

from .errors import (BadQueryError, BlockedURLError, CorpusError, ExtractionError, FetchError, FetchNetworkError,
                     FetchTimeoutError, HTTPStatusError, InvalidURLError, RetrievalError, RobotsDisallowedError,
                     SearchUnavailableError, SearxngJSONDisabledError, TooLargeError, TooManyRedirectsError,
                     UnsupportedContentError)
from .settings import RetrievalSettings
from .types import Document, Hit, Page, Passage, SearchResult

__all__ = [
    "BadQueryError", "BlockedURLError", "CorpusError", "CorpusIndex", "Document", "ExtractionError", "FetchError",
    "FetchNetworkError", "FetchTimeoutError", "Fetcher", "HTTPStatusError", "Hit", "InvalidURLError",
    "LocalSearchProvider", "LocalWeb",
    "Page", "Passage", "Reader", "RetrievalError", "RetrievalSettings", "RobotsDisallowedError", "SearchProvider",
    "SearchResult", "SearchUnavailableError", "SearxngJSONDisabledError", "SearxngSearchProvider", "TooLargeError",
    "TooManyRedirectsError", "UnsupportedContentError", "fetch_url", "make_provider",
]

_LAZY = {
    "Fetcher": ".fetcher", "fetch_url": ".fetcher", "Reader": ".reader", "LocalWeb": ".localweb",
    "CorpusIndex": ".index", "SearchProvider": ".providers", "LocalSearchProvider": ".providers",
    "SearxngSearchProvider": ".providers", "make_provider": ".providers",
}


def __getattr__(name: str):
    """Heavy parts (httpx, trafilatura, faiss, torch) load on first use, so importing retrieval stays fast."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
