"""Plain-text helpers shared by the graph: key terms, sentence splitting, lexical support, injection filtering."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

STOPWORDS = frozenset("""
a an the and or but nor of to in on at by for with from into onto over under about as is are was were be been being
am do does did doing done have has had having it its it's this that these those there here which who whom whose what
when where why how than then so such not no yes can could would should will shall may might must also very more most
less least same other another any all both each few many much some one first second his her hers him he she they them
their theirs we us our ours you your yours i me my mine if while during before after above below up down out off again
further once only own just too s t don now between through against because until via per whether either neither
according said says say called known named
и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от меня еще
нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был была были было него до вас нибудь опять уж вам
ведь там потом себя ничего ей может они тут где есть надо ней для мы тебя их чем сам чтобы без будто чего раз тоже
себе под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один почти мой тем чтобы нее сейчас
куда зачем всех никогда можно при наконец два об другой хоть после над больше тот через эти нас про всего них
какая много разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда
конечно всю между это является являются являлся являлась стал стала также который которая которое
""".split())

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_SENT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9А-ЯЁ])|(?<=[。！？])[」』]*\s*")
# Han, Hiragana, Katakana, Hangul: scripts written without spaces, compared as character bigrams
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_CJK_RUN = re.compile(_CJK.pattern + "+")


def fold(text: str) -> str:
    """Lower case without accents, every script kept (Cyrillic, Greek, CJK): ``"Café Ёлка"`` -> ``"cafe елка"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(text: str) -> list[str]:
    """Words of a text, folded; a run of CJK characters becomes its character bigrams (one character alone)."""
    out = []
    for w in _WORD.findall(fold(text)):
        if not _CJK.search(w):
            out.append(w)
            continue
        for part in re.split(f"({_CJK_RUN.pattern})", w):
            if not part:
                continue
            if _CJK.match(part):
                out.extend([part] if len(part) == 1 else [part[i:i + 2] for i in range(len(part) - 1)])
            else:
                out.append(part)
    return out


def stem(word: str) -> str:
    """A crude stem: possessives and common English suffixes off, then at most 6 characters (Arthur's ~ Arthur,
    started ~ start); other scripts are cut to 6 characters too (a crude stem for Russian endings)."""
    w = re.sub(r"['’]s$", "", word)
    if w.isascii():
        for suf in ("ing", "edly", "ed", "es", "s"):
            if len(w) > len(suf) + 3 and w.endswith(suf):
                w = w[: -len(suf)]
                break
    return w[:6]


def key_terms(text: str) -> set[str]:
    """Content terms of a text: no stop words, no citation markers, stemmed. Numbers count (years matter); CJK
    bigrams count."""
    text = strip_markers(text)
    return {stem(w) for w in words(text)
            if w not in STOPWORDS and (len(w) > 2 or w.isdigit() or _CJK.match(w))}


def coverage(claim_terms: set[str], passage_terms: set[str]) -> float:
    """Share of the claim's key terms found in the passage (1.0 for a claim without key terms)."""
    if not claim_terms:
        return 1.0
    return len(claim_terms & passage_terms) / len(claim_terms)


def split_sentences(text: str) -> list[str]:
    """Sentences of a text, split at terminal punctuation followed by a capital or digit, and at blank lines."""
    out = []
    for block in re.split(r"\n\s*\n|\n(?=[-*•]\s)", text):
        block = block.strip()
        if block:
            out.extend(s.strip() for s in _SENT.split(block) if s.strip())
    return out


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, so quotes can be cut exactly from it."""
    spans, pos = [], 0
    for s in split_sentences(text):
        i = text.find(s, pos)
        if i < 0:
            continue
        spans.append((i, i + len(s)))
        pos = i + len(s)
    return spans


# Citation markers in the shapes models write: [1], [1, 3, 5], [1;2], [2-4], [2–4], [^2], [source 2], 【1】, ［1］,
# 〔1〕 (full-width digits too), and superscripts ¹²³ after punctuation (after a letter they may be units: m²).
_NUM = r"[0-9０-９]+"
_LIST = rf"{_NUM}(?:\s*(?:[,;，；、/|&]|[-–—~～]|\band\b)\s*{_NUM})*"
_PREFIX = r"(?:\^|#|(?:sources?|refs?\.?|citations?|evidence|passages?)\s*:?\s*)?"
_SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_CITE = re.compile(
    rf"\[\s*{_PREFIX}(?P<a>{_LIST})\s*\]|[【［〔]\s*{_PREFIX}(?P<b>{_LIST})\s*[】］〕]"
    rf"|(?<=[.,;:!?)\]\"'”’])(?P<c>[{_SUP}]+(?:[,˒][{_SUP}]+)*)", re.IGNORECASE)
# a footnote definition line a model appends ("[^1]: Shirley Temple, Wikipedia")
_FOOTNOTE_DEF = re.compile(r"^[ \t]*\[\^?[0-9]+\]:.*$\n?", re.MULTILINE)
_MAX_RANGE = 20  # [1-500] is not 500 citations


def _marker_numbers(m: re.Match) -> list[int]:
    """The numbers of one marker, ranges expanded (at most _MAX_RANGE numbers each), in order."""
    body = m.group("a") or m.group("b")
    if body is None:
        body = m.group("c").translate(str.maketrans(_SUP + "˒", "0123456789,"))
    body = unicodedata.normalize("NFKC", body)
    out: list[int] = []
    for part in re.split(r"\s*(?:[,;、/|&]|\band\b)\s*", body, flags=re.IGNORECASE):
        ends = [int(x) for x in re.split(r"\s*[-–—~～]\s*", part) if x.strip().isdigit()]
        if len(ends) == 2 and 0 <= ends[1] - ends[0] < _MAX_RANGE:
            out.extend(range(ends[0], ends[1] + 1))
        else:
            out.extend(ends)
    return out


@dataclass
class Marker:
    """One citation marker found in a text: where it is and the numbers it cites."""

    start_at: int
    end_at: int
    numbers: list[int]

    def start(self) -> int:
        return self.start_at

    def end(self) -> int:
        return self.end_at


def markers(text: str) -> list[Marker]:
    """Every citation marker of `text` (any shape), in order."""
    return [Marker(m.start(), m.end(), _marker_numbers(m)) for m in _CITE.finditer(text)]


def drop_footnote_definitions(text: str) -> str:
    return _FOOTNOTE_DEF.sub("", text)


def strip_markers(text: str) -> str:
    """`text` with every citation marker and footnote definition line replaced by a space."""
    return _CITE.sub(" ", _FOOTNOTE_DEF.sub("", text))


def cited_numbers(text: str) -> list[int]:
    """Every number cited in `text`, in order, whatever the marker's shape."""
    out = []
    for m in _CITE.finditer(text):
        out.extend(_marker_numbers(m))
    return out


def strip_citations(text: str) -> str:
    """`text` without citation markers (any shape) or footnote definitions, spaces before punctuation closed."""
    bare = _CITE.sub("", _FOOTNOTE_DEF.sub("", text))
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", bare)).strip()


def replace_citations(text: str, fn) -> str:
    """Rewrite every marker (any shape) as plain [n][m]: fn(n) -> new number or None to drop it. Footnote
    definition lines go."""

    def sub(m: re.Match) -> str:
        nums = []
        for n in _marker_numbers(m):
            new = fn(n)
            if new is not None and new not in nums:
                nums.append(new)
        return "".join(f"[{n}]" for n in nums)

    return _CITE.sub(sub, _FOOTNOTE_DEF.sub("", text))


# Page text is untrusted. Sentences that address the reader or the model are taken out before a model sees them,
# in any language: an imperative aimed at "you" / the assistant / the AI, an order to ignore what came before, chat
# role markers and template tags, a fake block in the prompt's own format ("Question: ... Answer: ..."), an encoded
# payload. The checks run on the sentence folded (NFKC, zero-width characters out), so look-alike spellings match too.
_INJECTION_PATTERNS = [
    # ignore / forget the instructions (en, de, fr, es, it, pt, nl, ru, zh, ja, ko)
    r"\b(ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,60}\b(instructions?|prompts?|rules|directions|"
    r"guidelines|above|previous|prior|earlier|context|evidence|sources?)",
    r"\b(ignorier\w*|vergiss|missachte\w*)\b", r"\b(ignore[rz]?|oublie[rz]?)\b[^.\n]{0,40}\b(instructions?|consignes|"
    r"règles|précédent\w*)", r"\b(ignora|ignorate|olvida|olvide|esquece|esqueça|dimentica)\b[^.\n]{0,40}"
    r"\b(instru\w*|indicaciones|regras|regole|anterior\w*|precedent\w*)",
    r"\b(negeer|vergeet)\b", r"(игнорир\w*|забудь\w*|не обращай\w*)", r"(忽略|无视|無視|忘记|忘掉|忘れ|무시)",
    # "you are now", "new instructions", "system prompt", "as an AI", developer/jailbreak modes
    r"\b(system prompt|you are now|from now on|new instructions?|as an ai( language)? model|developer mode|jailbreak|"
    r"do anything now|pretend (to be|you are)|act as (an? )?(ai|assistant|model))\b",
    # addressing the assistant / the AI / the model, in several languages
    r"\b(dear|attention|note (to|for)|hey|hello|message (to|for)|instructions? (to|for))\s+(the\s+)?(ai|assistant|"
    r"model|llm|language model|chatbot|bot|gpt|agent)s?\b",
    r"\b(ai|assistant|llm|language model|chatbot|gpt|large language model)s?\s*(reading|processing|summari[sz]ing)\b",
    r"\bif you are (an? )?(ai|assistant|language model|llm|bot|model)\b",
    r"\b(assistants?|ai|models?|llms?)\s+(must|should|shall|have to|need to|are required to|are instructed to)\b",
    r"\byou\s+(must|should|shall|have to|need to|are required to|are instructed to)\s+(now\s+|only\s+|always\s+)?"
    r"(answer|reply|respond|say|write|output|print|ignore|cite|include|report|repeat|state)\b",
    r"\b(du musst|sie müssen|vous devez|tu dois|debes|usted debe|devi|você deve)\b",
    r"(ты должен|вы должны|ассистент|нейросет\w*|языков\w+ модел\w*)", r"(你必须|您必须|请你|助手|人工智能|语言模型|"
    r"アシスタント|あなたは|してください|指示に従|按照指令)", r"(어시스턴트|당신은)",
    # orders about the answer: reply / say / output X, do not cite
    r"\b(reply|respond|answer|say|output|print|write|return|state)\s+(only\s+|with\s+|exactly\s+|just\s+|the word\s+|"
    r"that\s+)*[\"'“‘«]",
    r"\b(your|the) (final |only )?(answer|reply|response|output) (must|should|shall|is to|will) ",
    r"(?m:^)\s*(please\s+)?(write|say|answer|reply|respond|output|print|repeat|type|tell)\s+(that|this|it|only|"
    r"exactly|the word|the answer|me)\b|(?m:^)\s*please\s+(write|say|answer|reply|respond|output|print|repeat)\b",
    r"\b(repeat|copy|echo)\b[^.\n]{0,30}\b(exactly|verbatim|word for word|after me)\b",
    r"\b(only|real|true) (correct )?(response|answer|reply)\b",
    r"\b(do not|don't|never)\s+(cite|mention|tell|reveal|say|use the)",
    r"\b(antworte|réponds|répondez|responde|rispondi|responda)\b", r"(ответь\w*|отвечай\w*|回答[：:]|答案[：:]|回答して)",
    # chat roles, template tags, fake prompt blocks
    r"<\|[^|>]{1,30}\|>|<\/?(start_of_turn|end_of_turn|s|im_start|im_end|system|assistant|user)\b|\[/?INST\]|<<\/?SYS>>",
    r"(?m:^)\s*(system|assistant|user|human|ai|model|developer)\s*[:：]",
    r"#{2,}\s*(instruction|response|system|answer)",
    r"(?m:^)\s*(question|answer|evidence|frage|antwort|réponse|pregunta|respuesta|вопрос|ответ)\s*[:：]",
    r"(?m:^)\s*(问题|問題|答案|回答|질문|답변)\s*[:：]", r"\bquestion\s*[:：].{0,300}\banswer\s*[:：]",
    # an encoded payload to decode, a comment block, a prompt-format delimiter
    r"\b(base64|rot13|hex[- ]encoded)\b|\b(decode|decrypt) (this|the following|it)\b",
    r"(?<![\w/])(?=[A-Za-z0-9+]*\d)(?=[A-Za-z0-9+]*[A-Z])(?=[A-Za-z0-9+]*[a-z])[A-Za-z0-9+]{20,}={0,2}(?![\w/])",
    r"<!--|-->|\[//\]:|<<<|>>>",
]
_INJECTION = re.compile("|".join(f"(?:{p})" for p in _INJECTION_PATTERNS), re.IGNORECASE)


def _suspect_form(text: str) -> str:
    """The text as compared for injection: NFKC (full-width and look-alike forms), format characters out."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def looks_like_injection(text: str) -> bool:
    """True when the text addresses the reader or the model (instructions, roles, a fake prompt block)."""
    return bool(_INJECTION.search(_suspect_form(text)))


REMOVED = "(…)"  # what stands for a removed sentence: no words a model could copy or a check could match
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")
_TURN_END = re.compile(r"(>|\]|\b(system|user|model|assistant|human|response|answer)\s*[:：]?)\s*$", re.IGNORECASE)


def defuse(text: str) -> tuple[str, int]:
    """Page text made safe to quote to a model: from the first sentence of a line that reads as instructions to
    the end of that line (a fake chat turn's answer follows its role tag), replaced by REMOVED; sentences are split
    after every full stop, so an attack glued to a fact takes only itself out. Our delimiters are neutralised.
    Returns (text, number of lines cut)."""
    removed = 0
    parts: list[str] = []
    turn_opened = False  # the line before ended on a role tag: this line is the fake turn's text
    for line in text.split("\n"):
        pieces = [p.strip() for p in _SENTENCE_END.split(line) if p.strip()]
        if turn_opened and pieces:
            pieces[0] = "assistant: " + pieces[0]
        turn_opened = False
        for piece in pieces:
            if looks_like_injection(piece):
                removed += 1
                if not parts or parts[-1] != REMOVED:
                    parts.append(REMOVED)
                turn_opened = bool(_TURN_END.search(line))
                break
            parts.append(piece)
    safe = " ".join(parts)
    safe = safe.replace("<<<", "«").replace(">>>", "»")
    return safe, removed


def truncate_words(text: str, n: int) -> str:
    ws = text.split()
    return " ".join(ws[:n]) + (" …" if len(ws) > n else "")
