"""Errors a user can cause in retrieval, each with a one-line message that says what to do.

Every class here is a `moesearch_core.errors.UserError` (a one-line message and an exit code: 2 bad input,
3 something unavailable, 4 deadline); the CLI, the UI and the evaluator show it through `render_error`.
"""

from __future__ import annotations

from moesearch_core.errors import UserError


class RetrievalError(UserError):
    exit_code = 2


class BadQueryError(RetrievalError):
    """Empty, oversized or otherwise unusable query."""


class CorpusError(RetrievalError):
    """A corpus source that cannot be read (missing file, bad JSONL, empty folder)."""


class IndexError_(RetrievalError):  # noqa: N801 - not the builtin IndexError
    """The on-disk index is missing or unusable."""

    exit_code = 3


class SearchUnavailableError(RetrievalError):
    """The search engine cannot be reached or answered with an error."""

    exit_code = 3


class SearxngJSONDisabledError(SearchUnavailableError):
    """SearXNG answered 403 because JSON output is not enabled."""


class ExtractionError(RetrievalError):
    """No readable text could be extracted from a page or file."""


class FetchError(RetrievalError):
    """A URL was refused or could not be fetched; ``reason`` is the short text shown as 'skipped: <reason>'."""

    exit_code = 3

    def __init__(self, reason: str, url: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.url = url


class BlockedURLError(FetchError):
    """Refused by the SSRF guard: bad scheme, or a private/loopback/link-local/reserved address."""

    exit_code = 2


class InvalidURLError(BlockedURLError):
    """A URL (given, from a search hit, or a redirect's Location) that no browser could fetch: unparsable, a host that
    is not a valid domain name or IP address, a bad port. Never retried; a caller skips it and goes on."""


class RobotsDisallowedError(FetchError):
    exit_code = 2


class TooLargeError(FetchError):
    pass


class FetchTimeoutError(FetchError):
    exit_code = 4


class HTTPStatusError(FetchError):
    def __init__(self, reason: str, url: str | None = None, status: int = 0):
        super().__init__(reason, url)
        self.status = status


class TooManyRedirectsError(FetchError):
    pass


class UnsupportedContentError(FetchError):
    exit_code = 2


class FetchNetworkError(FetchError):
    """Connection refused, DNS failure, TLS error, broken transfer."""
