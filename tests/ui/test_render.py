"""ui.render: escaping, safe links, citations as links, source cards, export; checked by rendering the Markdown to
HTML with a CommonMark renderer that lets raw HTML through (the worst case)."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from agent.types import Answer, Citation
from agent.types import (ErrorRaised, NoteWritten, PageFetched, PageRead, PlanMade, Reflected, SearchDone, Token,
                         WarningRaised)
from ui.render import (answer_markdown, answer_view, escape_block, escape_md, export_markdown, quote_markdown,
                       safe_url, short_answer_markdown, site_of, source_card_markdown, step_line, summary_label)

MD = MarkdownIt("commonmark", {"html": True})
EVIL = '<script>alert("x")</script> <img src=x onerror=alert(1)> **bold** [link](javascript:alert(1)) $x$ :red[r]'


def html(md: str) -> str:
    return MD.render(md)


def test_escape_md_renders_exactly_the_text():
    out = html(escape_md(EVIL))
    assert "<script" not in out and "<img" not in out and "<strong>" not in out and "<a " not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in out
    assert "**bold**" in out and "$x$" in out


@pytest.mark.parametrize("text", ["# heading", "- item", "1. item", "> quote", "    code", "---", "`tick`", "a|b|c"])
def test_escape_md_neutralises_block_syntax(text):
    out = html(escape_md(text))
    assert out.startswith("<p>") and "<h1>" not in out and "<li>" not in out and "<code>" not in out


def test_escape_block_keeps_paragraphs_and_line_breaks():
    out = html(escape_block("first line\nsecond <b>line</b>\n\n# new paragraph"))
    assert out.count("<p>") == 2 and "<br />" in out and "<b>" not in out and "<h1>" not in out


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,<script>", "file:///etc/passwd",
                                 "ftp://x.org/a", "//evil.org/x", "https://", "https://exa mple.org", "", None, 42,
                                 "https://x.org/\x00a", "vbscript:msgbox"])
def test_safe_url_refuses_everything_but_http_and_https(url):
    assert safe_url(url) is None


def test_safe_url_encodes_what_could_break_a_link():
    u = safe_url('https://en.wikipedia.org/wiki/Kiss_and_Tell_(1945_film)?q="a"<b>')
    assert u.startswith("https://en.wikipedia.org/wiki/Kiss_and_Tell_")
    assert not set('()"<> ') & set(u)
    assert safe_url("http://127.0.0.1:8080/a") == "http://127.0.0.1:8080/a"


def test_site_of():
    assert site_of("https://www.example.org/a") == "example.org"
    assert site_of("not a url") == ""


CITES = [Citation(1, "https://en.wikipedia.org/wiki/Shirley_Temple", "Shirley Temple",
                  "Shirley Temple Black was an American actress and diplomat.", "2020-01-02"),
         Citation(2, "javascript:alert(1)", "<script>alert(2)</script>", "evil quote \" with \\ quotes")]


def test_answer_markdown_links_citations_with_the_passage_on_hover():
    md = answer_markdown("She was Chief of Protocol [1]. Also [2], [3] and [1, 2].", CITES)
    out = html(md)
    assert out.count('href="https://en.wikipedia.org/wiki/Shirley_Temple"') == 2
    assert 'title="Shirley Temple Black was an American actress and diplomat."' in out
    assert "javascript" not in out  # source 2 has no safe URL: its markers stay plain text
    assert "[2]" in out and "[3]" in out and "<script" not in out
    assert out.startswith("<p>She was Chief of Protocol <a")


def test_answer_markdown_escapes_the_model_text():
    out = html(answer_markdown("Hi <script>x</script>\n\n# not a heading [1]", CITES))
    assert "<script" not in out and "<h1>" not in out and out.count("<p>") == 2 and "<a " in out


def test_source_card_escapes_the_title_and_links_only_http():
    good = html(source_card_markdown(CITES[0]))
    assert 'href="https://en.wikipedia.org/wiki/Shirley_Temple"' in good and "en.wikipedia.org" in good
    assert "2020-01-02" in good
    bad = html(source_card_markdown(CITES[1]))
    assert "<script" not in bad and "&lt;script&gt;alert(2)&lt;/script&gt;" in bad and "<a " not in bad
    assert "not an http(s) URL" in bad
    up = html(source_card_markdown(Citation(3, "file:notes.md", "Notes", "q")))
    assert "uploaded file" in up and "<a " not in up


def test_quote_markdown_is_a_block_quote_of_plain_text():
    out = html(quote_markdown("line one <b>x</b>\n\n# two"))
    assert out.startswith("<blockquote>") and "<b>" not in out and "<h1>" not in out


def test_answer_view_and_export():
    ans = Answer(question="q", text="Chief of Protocol [1].", citations=[CITES[0]],
                 sources=[{"url": CITES[0].url, "title": "Shirley Temple", "published": None},
                          {"url": "https://example.org/other", "title": "Other <page>", "published": "2021"}],
                 follow_ups=["When was she born?"], warnings=["evidence cut to fit the context window"],
                 elapsed_s=3.5)
    view = answer_view(ans)
    assert view["answer"] == "Chief of Protocol [1]." and view["citations"][0]["n"] == 1
    assert view["follow_ups"] == ["When was she born?"]
    assert answer_view(view) == view  # stored views round-trip
    md = export_markdown("Who? <i>", view)
    out = html(md)
    assert "<i>" not in out and "## Sources" in md and "## Also read" in md and "Other &lt;page&gt;" in out
    assert 'href="https://example.org/other"' in out and "evidence cut to fit" in out
    assert summary_label(view, ["**Search** x", "**Read** y"]) == "Done: 3.5 s, 1 search, 1 page read"
    assert view["short_answer"] == "" and "**Answer:**" not in md  # no short answer: no line for it


def test_short_answer_leads_the_export_escaped():
    ans = Answer(question="q", text="She served as Chief of Protocol [1].", citations=[CITES[0]],
                 short_answer="Chief of <b>Protocol</b>")
    view = answer_view(ans)
    assert short_answer_markdown(view["short_answer"]) == "**" + escape_md("Chief of <b>Protocol</b>") + "**"
    assert short_answer_markdown("") == "" and short_answer_markdown("  ") == ""
    md = export_markdown("Who?", view)
    assert md.index("**Answer:**") < md.index("She served")
    assert "<b>" not in html(md) and "Chief of &lt;b&gt;Protocol&lt;/b&gt;" in html(md)


def test_step_lines_escape_page_content():
    lines = [
        step_line(PlanMade([{"id": "q1", "question": "Who <b>?", "depends_on": []}], awaiting_review=False)),
        step_line(SearchDone("q0", "kiss and tell", 5, [], [], ["SearXNG timed out"])),
        step_line(PageFetched("https://x.org/a", True, from_cache=True)),
        step_line(PageFetched("https://x.org/b", False, "robots.txt")),
        step_line(PageRead("https://x.org/a", "<script>alert(1)</script>", 2, "q0")),
        step_line(NoteWritten("q1", "When was <i>she</i> born?", "n")),
        step_line(Reflected("more", [{"id": "q3", "question": "next <u>?"}])),
        step_line(Reflected("answer", [])),
        step_line(WarningRaised("deadline reached")),
    ]
    assert all(lines)
    assert step_line(Token("x")) is None and step_line(ErrorRaised("m", 2)) is None
    out = html("\n\n".join(lines))
    assert "<script" not in out and "<b>" not in out
    assert "Note</strong> on “When was &lt;i&gt;she&lt;/i&gt; born?”" in out
    assert "next &lt;u&gt;?" in out and "<u>" not in out
    assert "5 hits" in out and "from cache" in out and "robots.txt" in out and "kept 2 passages" in out
