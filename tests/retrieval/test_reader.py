"""The reader: extraction from real local-web pages and uploads, exact passage offsets, ranking on real articles."""

from __future__ import annotations

import asyncio

import pytest

from retrieval import ExtractionError, Fetcher, Page, Reader, RetrievalSettings, UnsupportedContentError
from retrieval.text import chunk_spans, split_sentences


def minimal_pdf(lines: list[str], title: str = "Test PDF") -> bytes:
    """A valid one-page PDF with real text objects (Helvetica), built by hand with a correct xref table."""
    content = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(
        "(" + s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*" for s in lines) + " ET"
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({title}) >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{off:010d} 00000 n \n" for off in offsets).encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader(RetrievalSettings())


def fetch_local(web, path: str) -> Page:
    async def go():
        async with Fetcher(RetrievalSettings(searxng_url=web.search_url), cache=False) as f:
            return await f.fetch(web.url + path)

    return asyncio.run(go())


def test_sentence_spans_are_exact():
    text = "Dr. J. R. R. Tolkien wrote books. He lived in Oxford, U.K. in 1950!  \"Was it fun?\" Yes.\n\nNew para here"
    spans = split_sentences(text)
    sents = [text[s.start:s.end] for s in spans]
    assert sents == ["Dr. J. R. R. Tolkien wrote books.", "He lived in Oxford, U.K. in 1950!", "\"Was it fun?\"",
                     "Yes.", "New para here"]


def test_chunks_are_sentence_aligned_bounded_and_overlapping(shared_data):
    text = (shared_data / "wiki_pages" / "Blue_whale.txt").read_text(encoding="utf-8")
    spans = chunk_spans(text, target_words=100, max_words=150, overlap_sentences=1)
    assert len(spans) > 20
    starts = {s.start for s in split_sentences(text)}
    for a, b in zip(spans, spans[1:]):
        assert len(text[a.start:a.end].split()) <= 150
        assert a.start in starts or a.start == spans[0].start
        if sum(a.start <= st < a.end for st in starts) > 1:
            assert b.start < a.end  # one sentence of overlap


def test_extracts_main_text_from_local_web_page(localweb, reader):
    page = fetch_local(localweb, "/wiki/Shirley_Temple")
    doc = reader.extract(page)
    assert doc.title == "Shirley Temple"
    assert "Chief of Protocol" in doc.text
    for boilerplate in ("cookie", "Privacy policy", "Related articles", "Random article", "Log in", "Creative Commons"):
        assert boilerplate not in doc.text, boilerplate
    passages = reader.rank(doc, "What government position did Shirley Temple hold?", 3)
    assert passages and "Chief of Protocol" in passages[0].text
    for p in passages:
        assert doc.text[p.start:p.end] == p.text and p.url == page.url and p.title == "Shirley Temple"


def test_published_date_comes_from_page_metadata(localweb, reader):
    doc = reader.extract(fetch_local(localweb, "/wiki/Old_harbour_report"))
    assert doc.published == "2001-05-04" and "Ferries stopped" in doc.text


def test_title_with_special_characters_is_escaped_and_served(localweb, reader):
    page = fetch_local(localweb, "/wiki/Kiss_and_Tell_(1945_film)")
    doc = reader.extract(page)
    assert doc.title == "Kiss and Tell (1945 film)" and "Corliss Archer" in doc.text


def test_uploads_markdown_text_pdf_and_html(reader):
    md = reader.document_from_bytes(b"# Harbour notes\n\nThe ferry leaves at nine. It returns at five.\n", "notes.md")
    assert md.title == "Harbour notes" and "ferry leaves at nine" in md.text
    txt = reader.document_from_bytes("Title: Caf\u00e9_menu\nCr\u00e8me br\u00fbl\u00e9e costs four euros.".encode(),
                                     "text/plain")
    assert txt.title == "Caf\u00e9 menu" and "br\u00fbl\u00e9e" in txt.text
    pdf = reader.document_from_bytes(minimal_pdf(["The lighthouse was built in 1887.", "It is 40 metres tall."],
                                                 title="Lighthouse facts"), "facts.pdf")
    assert pdf.title == "Lighthouse facts" and "built in 1887" in pdf.text
    best = reader.rank(pdf, "How tall is the lighthouse?", 1)[0]
    assert pdf.text[best.start:best.end] == best.text
    html = reader.document_from_bytes(b"<html><head><title>Broken</title><body><p>Unclosed <b>tags <i>everywhere "
                                      b"but the sentence about otters survives.", "page.html")
    assert "otters survives" in html.text


def test_bad_uploads_give_clear_errors(reader):
    with pytest.raises(UnsupportedContentError):
        reader.document_from_bytes(bytes(range(256)) * 4, "blob.bin")
    with pytest.raises(ExtractionError, match="PDF"):
        reader.document_from_bytes(b"%PDF-1.4 this is not really a pdf", "broken.pdf")
    with pytest.raises(ExtractionError):
        reader.document_from_bytes(b"   \n\n  ", "empty.txt")


def test_non_utf8_page_is_decoded(tmp_data_dir, fault_server, reader):
    async def go():
        async with Fetcher(RetrievalSettings(fetch_allow_hosts=[f"127.0.0.1:{fault_server.port}"])) as f:
            return await f.fetch(fault_server.url + "/latin1")

    doc = reader.extract(asyncio.run(go()))
    assert "Crème brûlée" in doc.text


@pytest.mark.parametrize("name,query,expected", [
    ("Anglo-Zanzibar_War.txt", "How long did the war last?", ("38 and 45 minutes", "less than three-quarters of an hour")),
    ("Blue_whale.txt", "How much does the heart of a blue whale weigh?", ("180 kg",)),
    ("Airbus_A380.txt", "When did the A380 prototype make its first flight?", ("27 April 2005",)),
    ("Burj_Khalifa.txt", "What is the total height of the Burj Khalifa?", ("829.8 m",)),
    ("Age_of_Earth.txt", "How old is the Earth?", ("4.54",)),
])
def test_ranking_puts_the_answer_first_on_real_articles(shared_data, reader, name, query, expected):
    data = (shared_data / "wiki_pages" / name).read_bytes()
    doc = reader.document_from_bytes(data, name, url=f"https://en.wikipedia.org/wiki/{name[:-4]}")
    passages = reader.rank(doc, query, 3)
    assert any(e in passages[0].text for e in expected), [p.text[:120] for p in passages]
    for p in passages:
        assert doc.text[p.start:p.end] == p.text
    assert passages[0].score >= passages[1].score


def test_every_passage_is_contiguous_text_of_the_page(localweb, reader):
    """The extractor may move a heading after the body; a passage must still be quotable as it stands on the page."""
    import html
    import re

    for path in ("/wiki/Kiss_and_Tell_(1945_film)", "/wiki/Shirley_Temple"):
        page = fetch_local(localweb, path)
        visible = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.body.decode())).split())
        passages = reader.read(page, "Corliss Archer Kiss and Tell Shirley Temple government position", k=5)
        assert passages
        for p in passages:
            assert " ".join(p.text.split()) in visible
            assert p.text.rstrip()[-1] in ".!?\"')”’]", "headings and taglines are not passages"


def test_a_line_break_is_a_hard_passage_boundary():
    text = "Kiss and Tell is a film. It stars Shirley Temple.\nKiss and Tell (1945 film)\nFrom LocalWiki."
    spans = chunk_spans(text, 100, 150, 1, blocks=True)
    assert [text[s.start:s.end] for s in spans][0] == "Kiss and Tell is a film. It stars Shirley Temple."
    assert len(chunk_spans(text, 100, 150, 1)) == 1  # plain chunking (the corpus index) is unchanged
