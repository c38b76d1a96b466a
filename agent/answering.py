"""Text helpers of the answer step (agent/steps/answer.py): cut the prompt's scaffolding a weak model repeats, drop
sentences copied from the worked examples, find the best sentence to quote (follow-up questions: agent/follow_ups.py)."""

from __future__ import annotations

import re

from agent import prompts
from agent.text import coverage, key_terms, looks_like_injection, sentence_spans


def tidy(text: str) -> str:
    """The answer without the prompt's scaffolding a base model sometimes repeats: field names, a copied evidence
    line ("[2] Title: <<<...>>>"), the quoting delimiters."""
    text = re.split(r"\n\s*(?:Question|Evidence|Answer|Plan|Note|Findings)\b[^\n]*:|\n\s*\[\d+\]\s", text)[0]
    head = re.split(r"<<<|>>>", text)[0]
    if head.strip():  # what follows a quoting delimiter is evidence the model copied, not its answer
        text = head
    text = re.sub(r"\[\d+\]\s*[^\[\]<>«»\n]{0,120}:\s*(<<<|«)", "", text)  # "[n] Title: <<<" mid-line
    text = re.sub(r"<<<|>>>|<<|>>|[«»‹›]", " ", text)
    return " ".join(text.split()).strip()


def drop_example_echo(text: str, shown) -> str:
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


def best_sentence(question: str, shown):
    terms = key_terms(question)
    best = max(shown, key=lambda e: (coverage(terms, key_terms(e.title + " " + e.text)), e.score))
    spans = sentence_spans(best.text) or [(0, len(best.text))]
    # a sentence addressing the reader (a page's prompt injection) is never the one quoted
    spans = [sp for sp in spans if not looks_like_injection(best.text[sp[0]:sp[1]])] or [(0, 0)]
    start, end = max(spans, key=lambda sp: coverage(terms, key_terms(best.text[sp[0]:sp[1]])))
    return best, best.text[start:end]
