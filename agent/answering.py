"""The last step: choose the evidence that fits the context window, stream the answer, check its citations.

A weak model may cite nothing, cite wrongly or ramble: the citation check repairs what it can, and when nothing the
model wrote is supported, the answer falls back to quoting the most relevant passage and says the question is not
settled. A strong model's answer passes through the same check unchanged.
"""

from __future__ import annotations

import re

from agent import prompts
from agent.citations import UNSETTLED_NOTE, check_citations
from agent.run import QuestionRun
from agent.text import coverage, key_terms, sentence_spans, words
from agent.types import Answer, Citation

NO_EVIDENCE = "No sources were found for this question, so it is not answered."


async def write_answer(run: QuestionRun, notes: list[tuple[str, str]]) -> Answer:
    s = run.settings
    if run.mode == "closed-book":
        text, _ = await run.stream_answer(prompts.closed_book_prompt(run.question, run.history), s.answer_tokens,
                                          prompts.STOPS)
        text = _tidy(text) or "I do not know."
        run.warn("closed-book: answered from the model's memory, without sources")
        return _answer(run, text, [], settled=False)

    run.check_deadline_before_answer()
    frame = prompts.answer_prompt(run.question, [], run.history)
    budget = s.evidence_tokens or max(256, run.llm.context_window - run.llm.count_tokens(frame)
                                      - s.answer_tokens - 64)
    shown, cut = run.pool.select(run.question, [n for _, n in notes], s.max_evidence, budget, run.llm.count_tokens)
    if cut:
        run.warn(f"{cut} passage(s) left out to fit the model's context window ({run.llm.context_window} tokens)")
    if not shown:
        run.emit("token", text=NO_EVIDENCE)
        return _answer(run, NO_EVIDENCE, [], settled=False)

    # the notes choose and order the evidence (select); the prompt shows only evidence, which a small model
    # cannot confuse with instructions to copy
    prompt = prompts.answer_prompt(run.question, [(i + 1, e.title, e.prompt_text()) for i, e in enumerate(shown)],
                                   run.history)
    raw, _ = await run.stream_answer(prompt, s.answer_tokens, prompts.EVIDENCE_STOPS)
    checked = check_citations(_drop_example_echo(_tidy(raw), shown), shown, question=run.question)
    text, cited, settled = checked.text, checked.cited, checked.settled
    if not cited:  # nothing the model wrote is backed by the evidence: quote the best passage instead
        best, sentence = _best_sentence(run.question, shown)
        text = f"{UNSETTLED_NOTE} The most relevant source says: \"{sentence}\" [1]"
        cited, settled = [best], False
    run.trace[-1].detail.update(raw=raw[:1000], removed=checked.removed, replaced=checked.replaced, dropped=checked.dropped,
                                added=checked.added, shown=len(shown))
    return _answer(run, text, cited, settled=settled)


def _tidy(text: str) -> str:
    """The answer without the prompt's scaffolding a base model sometimes repeats: field names, a copied evidence
    line ("[2] Title: <<<...>>>"), the quoting delimiters."""
    text = re.split(r"\n\s*(?:Question|Evidence|Answer|Plan|Note|Findings)\b[^\n]*:|\n\s*\[\d+\]\s", text)[0]
    head = re.split(r"<<<|>>>", text)[0]
    if head.strip():  # what follows a quoting delimiter is evidence the model copied, not its answer
        text = head
    text = re.sub(r"\[\d+\]\s*[^\[\]<>«»\n]{0,120}:\s*(<<<|«)", "", text)  # "[n] Title: <<<" mid-line
    text = re.sub(r"<<<|>>>|<<|>>|[«»‹›]", " ", text)
    return " ".join(text.split()).strip()


def _drop_example_echo(text: str, shown) -> str:
    """Sentences copied from the prompt's worked examples (a weak model's habit), unless the evidence says them too."""
    example = key_terms(prompts.EXAMPLE_TEXT)
    evidence = key_terms(" ".join(e.title + " " + e.text for e in shown))
    kept = []
    for start, end in sentence_spans(text) or [(0, len(text))]:
        terms = key_terms(text[start:end])
        if terms and coverage(terms, example) >= 0.6 and coverage(terms, evidence) < 0.5:
            continue
        kept.append(text[start:end])
    return " ".join(kept)


def _best_sentence(question: str, shown):
    terms = key_terms(question)
    best = max(shown, key=lambda e: (coverage(terms, key_terms(e.title + " " + e.text)), e.score))
    spans = sentence_spans(best.text) or [(0, len(best.text))]
    start, end = max(spans, key=lambda sp: coverage(terms, key_terms(best.text[sp[0]:sp[1]])))
    return best, best.text[start:end]


def follow_ups(question: str, cited, shown_titles: list[str]) -> list[str]:
    """Two or three next questions drawn from the evidence: the sources the question did not name."""
    asked = set(words(question))
    out = []
    for title in [e.title for e in cited] + shown_titles:
        base = re.sub(r"\s*\(.*?\)\s*$", "", title).strip()
        if base and not set(words(base)) <= asked and all(base not in q for q in out):
            out.append(f"What else is known about {base}?")
        if len(out) == 3:
            break
    return out


def _answer(run: QuestionRun, text: str, cited, *, settled: bool) -> Answer:
    citations = [Citation(i + 1, e.url, e.title, e.text, e.published) for i, e in enumerate(cited)]
    return Answer(
        question=run.question, text=text, citations=citations, trace=list(run.trace), mode=run.mode,
        settled=settled, warnings=list(run.warnings), fetched_urls=list(run.fetched_urls),
        sources=list(run.sources.values()), reasoning=run.reasoning,
        follow_ups=follow_ups(run.question, cited, [src["title"] for src in run.sources.values()]),
        elapsed_s=round(run.elapsed(), 3))
