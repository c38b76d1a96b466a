"""Pure functions that turn agent output into Markdown for Streamlit, safely.

Everything that comes from a page (titles, passages, URLs) or from the model is untrusted: it is escaped so that
Markdown, HTML, LaTeX (``$``) and Streamlit directives (``:red[...]``) in it show as plain text, and only http(s)
URLs ever become links. The app never passes page content with ``unsafe_allow_html``.
"""

from __future__ import annotations

import re
import string
from dataclasses import asdict, is_dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from agent.types import NoteWritten, PageFetched, PageRead, Payload, PlanMade, Reflected, SearchDone, WarningRaised

_PUNCT = frozenset(string.punctuation)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")
CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")  # [1], [1, 2], [1; 3] as the agent writes them
QUOTE_TITLE_CHARS = 300


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def escape_md(text: Any) -> str:
    """One line of plain text as Markdown that renders exactly as the text: every ASCII punctuation character is
    backslash-escaped (CommonMark allows that for all of them), control characters dropped, whitespace collapsed."""
    text = _CONTROL.sub("", str(text if text is not None else ""))
    text = " ".join(text.split())
    return "".join("\\" + ch if ch in _PUNCT else ch for ch in text)


def escape_block(text: Any) -> str:
    """Plain text with line breaks as Markdown: each line escaped, paragraphs kept, single breaks as hard breaks."""
    text = _CONTROL.sub("", str(text if text is not None else "")).replace("\r\n", "\n").replace("\r", "\n")
    paras = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n\n".join("  \n".join(escape_md(line) for line in p.split("\n") if line.strip()) for p in paras)


def safe_url(url: Any) -> str | None:
    """The URL, percent-encoded so it cannot break out of a Markdown link, if it is http(s) with a host; else None."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or _CONTROL.search(url) or any(ch.isspace() for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    # keep URL syntax; encode what could end the link or the title: ( ) < > " ' ` \ and spaces
    return quote(url, safe=":/?#[]@!$&*+,;=%~-._")


def site_of(url: Any) -> str:
    """The host of a URL without a leading www (as plain text, not escaped)."""
    try:
        host = urlsplit(str(url)).hostname or ""
    except ValueError:
        host = ""
    return host[4:] if host.startswith("www.") else host


def _title_attr(text: str) -> str:
    """A Markdown link title ("..."), shown by the browser on hover: one line, quotes and backslashes escaped."""
    t = " ".join(_CONTROL.sub("", text).split())
    if len(t) > QUOTE_TITLE_CHARS:
        t = t[: QUOTE_TITLE_CHARS - 1].rstrip() + "…"
    return t.replace("\\", "\\\\").replace('"', '\\"')


def link(label_md: str, url: Any, hover: str | None = None) -> str:
    """A Markdown link with an already-escaped label; just the label when the URL is not a safe http(s) URL."""
    href = safe_url(url)
    if href is None:
        return label_md
    if hover:
        return f'[{label_md}]({href} "{_title_attr(hover)}")'
    return f"[{label_md}]({href})"


def citations_by_number(citations: list[Any]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for c in citations or []:
        try:
            n = int(_get(c, "n"))
        except (TypeError, ValueError):
            continue
        out[n] = {"n": n, "url": _get(c, "url", ""), "title": _get(c, "title", "") or "",
                  "quote": _get(c, "quote", "") or "", "published": _get(c, "published")}
    return out


def answer_markdown(text: str, citations: list[Any] | None = None) -> str:
    """The answer as Markdown: text escaped, each [n] a link to source n whose hover text is the quoted passage."""
    by_n = citations_by_number(citations or [])
    out: list[str] = []
    pos = 0
    for m in CITE.finditer(text or ""):
        out.append(escape_block(text[pos:m.start()]) if "\n" in text[pos:m.start()] else _escape_inline(text[pos:m.start()]))
        for num in re.split(r"\s*[,;]\s*", m.group(1)):
            n = int(num)
            label = f"\\[{n}\\]"
            c = by_n.get(n)
            out.append(link(label, c["url"], c["quote"] or c["title"]) if c else label)
        pos = m.end()
    rest = (text or "")[pos:]
    out.append(escape_block(rest) if "\n" in rest else _escape_inline(rest))
    return "".join(out)


def _escape_inline(segment: str) -> str:
    """Escape a piece of one line, keeping a single leading/trailing space (it separates words from [n] links)."""
    if not segment:
        return ""
    lead = " " if segment[0].isspace() else ""
    trail = " " if segment[-1].isspace() and segment.strip() else ""
    return lead + escape_md(segment) + trail


def quote_markdown(quote_text: str) -> str:
    """A passage as a Markdown block quote, escaped."""
    body = escape_block(quote_text)
    return "\n".join("> " + line if line else ">" for line in body.split("\n")) if body else ""


def source_card_markdown(c: Any) -> str:
    """The head of a source card: number, title (a link), site and date."""
    c = citations_by_number([c]).get(int(_get(c, "n", 0) or 0)) or {}
    title = escape_md(c.get("title") or site_of(c.get("url")) or "untitled")
    url = c.get("url")
    head = f"**\\[{c.get('n')}\\]** " + link(f"**{title}**", url)
    meta = [escape_md(site_of(url))] if site_of(url) else []
    if c.get("published"):
        meta.append(escape_md(c["published"]))
    if safe_url(url) is None and url:
        meta.append("uploaded file" if str(url).startswith("file:") else "link not shown: not an http\\(s\\) URL")
    return head + ("  \n" + " · ".join(meta) if meta else "")


def source_line_markdown(s: Any) -> str:
    """One page read (not necessarily cited): title as a link, site, date."""
    url = _get(s, "url", "")
    title = escape_md(_get(s, "title") or site_of(url) or "untitled")
    meta = [escape_md(site_of(url))] if site_of(url) else []
    if _get(s, "published"):
        meta.append(escape_md(_get(s, "published")))
    return "- " + link(title, url) + (" · " + " · ".join(meta) if meta else "")


def _plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    return obj


def answer_view(answer: Any) -> dict[str, Any]:
    """An Answer (or its dict) as the plain dict the app stores and shows: JSON-safe, trace reduced to labels."""
    if isinstance(answer, dict):
        d = dict(answer)
    elif hasattr(answer, "to_dict"):
        d = answer.to_dict()
    else:
        d = dict(_plain(answer))
    if "answer" not in d and "text" in d:
        d["answer"] = d.pop("text")
    d["citations"] = list(citations_by_number([_plain(c) for c in d.get("citations") or []]).values())
    d["trace"] = [{"kind": _get(s, "kind", ""), "label": _get(s, "label", ""), "elapsed_s": _get(s, "elapsed_s", 0.0)}
                  for s in (_plain(s) for s in d.get("trace") or [])]
    d.setdefault("sources", [])
    d.setdefault("follow_ups", [])
    d.setdefault("warnings", [])
    d.setdefault("settled", True)
    d["short_answer"] = " ".join(str(d.get("short_answer") or "").split())  # "" (shown as nothing) when unsettled
    return d


def short_answer_markdown(short: Any) -> str:
    """The short answer as a bold Markdown line (escaped), or "" when there is none (the app then shows no box)."""
    short = " ".join(str(short or "").split())
    return f"**{escape_md(short)}**" if short else ""


def export_markdown(question: str, view: dict[str, Any]) -> str:
    """An answer with its sources as a Markdown document (what the download button saves)."""
    lines = [f"# {escape_md(question)}", ""]
    if short_answer_markdown(view.get("short_answer")):
        lines += [f"**Answer:** {short_answer_markdown(view.get('short_answer'))}", ""]
    lines += [answer_markdown(view.get("answer", ""), view.get("citations")), ""]
    if view.get("warnings"):
        lines += ["", "**Warnings**", ""] + [f"- {escape_md(w)}" for w in view["warnings"]] + [""]
    if view.get("citations"):
        lines += ["## Sources", ""]
        for c in view["citations"]:
            lines += [source_card_markdown(c), "", quote_markdown(c.get("quote", "")), ""]
    others = [s for s in view.get("sources") or [] if _get(s, "url") not in {c["url"] for c in view.get("citations") or []}]
    if others:
        lines += ["## Also read", ""] + [source_line_markdown(s) for s in others] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _q(text: Any, n: int = 120) -> str:
    t = " ".join(str(text or "").split())
    return escape_md(t if len(t) <= n else t[: n - 1] + "…")


def step_line(data: Payload) -> str | None:
    """One line (Markdown, escaped) for the live status of a step event's payload; None for events that are not
    steps (tokens, the answer, an error)."""
    if isinstance(data, PlanMade):
        subs = data.sub_questions
        head = f"**Plan**: {len(subs)} sub\\-question{'s' if len(subs) != 1 else ''}"
        if data.awaiting_review:
            head += " \\(waiting for your review\\)"
        return head + "".join(f"  \n{i}\\. {_q(s['question'])}" for i, s in enumerate(subs, 1))
    if isinstance(data, SearchDone):
        line = f"**Search** “{_q(data.query)}”: {data.hits} hit{'s' if data.hits != 1 else ''}"
        return line + "".join(f"  \n⚠️ {_q(w, 200)}" for w in data.warnings)
    if isinstance(data, PageFetched):
        where = _q(data.url, 100)
        if data.ok:
            return f"**Fetched** {where}" + (" \\(from cache\\)" if data.from_cache else "")
        return f"**Skipped** {where}: {_q(data.reason or 'not fetched', 160)}"
    if isinstance(data, PageRead):
        n = data.passages
        return f"**Read** “{_q(data.title or site_of(data.url), 100)}”: kept {n} passage{'s' if n != 1 else ''}"
    if isinstance(data, NoteWritten):
        return f"**Note** on “{_q(data.question or data.sub_question, 80)}”: {_q(data.text, 200)}"
    if isinstance(data, Reflected):
        if data.decision == "more":
            return "**Reflect**: more evidence needed" + "".join(
                f"  \n\\+ {_q(s['question'])}" for s in data.new_sub_questions)
        return "**Reflect**: enough evidence, answering"
    if isinstance(data, WarningRaised):
        return f"⚠️ {_q(data.message, 300)}"
    return None


def summary_label(view: dict[str, Any] | None, steps: list[str]) -> str:
    """The label of the collapsed status once an answer is done."""
    n_search = sum(1 for s in steps if s.startswith("**Search**"))
    n_read = sum(1 for s in steps if s.startswith("**Read**"))
    parts = []
    if view and view.get("elapsed_s"):
        parts.append(f"{float(view['elapsed_s']):.1f} s")
    parts.append(f"{n_search} search{'es' if n_search != 1 else ''}")
    parts.append(f"{n_read} page{'s' if n_read != 1 else ''} read")
    return "Done: " + ", ".join(parts)
