"""robots.txt as RFC 9309 says: the longest matching rule wins, Allow wins a tie, ``*`` and ``$`` patterns, the
group of the most specific user agent. Parsing and matching are Scrapy's ``protego``; this module only maps the
robots.txt response to rules (RFC 9309 section 2.3.1: 2xx parse, 4xx "unavailable" = allow all, 5xx
"unreachable" = disallow all)."""

from __future__ import annotations

from dataclasses import dataclass

ROBOTS_MAX_BYTES = 512_000  # RFC 9309 2.5: crawlers SHOULD parse at least 500 KiB
ROBOTS_MAX_REDIRECTS = 5  # RFC 9309 2.3.1.2: follow at least five consecutive redirects
PRODUCT_TOKEN = "moesearch"


@dataclass
class RobotsRules:
    """What one origin's robots.txt allows. ``parser`` is a ``protego.Protego`` or None (no rules)."""

    parser: object | None = None
    disallow_all_reason: str | None = None

    @classmethod
    def allow_all(cls) -> "RobotsRules":
        return cls()

    @classmethod
    def from_response(cls, status: int, body: bytes) -> "RobotsRules":
        """Rules from the final (non-redirect) answer to ``/robots.txt``."""
        if 500 <= status <= 599:
            return cls(disallow_all_reason=f"answered HTTP {status}; RFC 9309 treats that as "
                                           "'disallow everything' until it answers; try again later")
        if not 200 <= status <= 299 or not body.strip():
            return cls.allow_all()
        from protego import Protego

        text = body.decode("utf-8", errors="replace").lstrip("\ufeff")
        return cls(parser=Protego.parse(text))

    def allows(self, url: str, agent: str = PRODUCT_TOKEN) -> bool:
        if self.disallow_all_reason is not None:
            return False
        return self.parser is None or bool(self.parser.can_fetch(url, agent))
