"""Corpus sources: JSONL (`id`, `title`, `text`, optional `url`, `published`) or a folder of .txt/.md/.html files."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .errors import CorpusError

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_CORPUS = DATA_DIR / "hotpotqa_corpus.jsonl"
FOLDER_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm"}


@dataclass
class CorpusDoc:
    id: str
    title: str
    text: str
    url: str
    published: str | None = None

    def content_hash(self) -> str:
        return hashlib.sha256(f"{self.title}\x00{self.url}\x00{self.published}\x00{self.text}".encode()).hexdigest()[:16]


def wikipedia_url(title: str) -> str:
    return "https://en.wikipedia.org/wiki/" + quote(title.replace(" ", "_"), safe="()',-.!:;*@$&+=~_")


def default_url(title: str, source: Path | None) -> str:
    """Docs without a URL: the shipped corpus is Wikipedia, so its pages get their real Wikipedia address."""
    if source is None or source.resolve() == DEFAULT_CORPUS.resolve():
        return wikipedia_url(title)
    return "corpus://" + quote(source.name) + "/" + quote(title.replace(" ", "_"), safe="")


def _read_jsonl(path: Path) -> list[CorpusDoc]:
    docs: list[CorpusDoc] = []
    try:
        fh = path.open(encoding="utf-8")
    except OSError as e:
        raise CorpusError(f"cannot read corpus {path}: {e.strerror}; give a readable JSONL file or folder") from e
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}:{n}: not valid JSON ({e.msg}); each line must be one JSON object") from e
            except UnicodeDecodeError as e:  # pragma: no cover
                raise CorpusError(f"{path}: not UTF-8 text; save the corpus as UTF-8 JSONL") from e
            if not isinstance(d, dict) or not isinstance(d.get("text"), str) or not d["text"].strip():
                raise CorpusError(f"{path}:{n}: each line needs a non-empty \"text\" field (and \"title\", \"id\")")
            title = str(d.get("title") or d.get("id") or f"doc {n}")
            doc_id = str(d.get("id") if d.get("id") is not None else n)
            url = d.get("url") or default_url(title, path)
            docs.append(CorpusDoc(doc_id, title, d["text"], url, d.get("published")))
    return docs


def _title_from_file(path: Path, text: str) -> tuple[str, str]:
    first = text.lstrip().split("\n", 1)[0].strip()
    if first.lower().startswith("title:"):
        title = first[6:].strip().replace("_", " ")
        rest = text.lstrip().split("\n", 1)[1] if "\n" in text.lstrip() else ""
        return title, rest.strip()
    if first.startswith("# "):
        return first[2:].strip(), text
    return path.stem.replace("_", " "), text


def _read_folder(path: Path) -> list[CorpusDoc]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES)
    if not files:
        raise CorpusError(f"no .txt, .md or .html files in {path}; give a folder of documents or a JSONL file")
    docs = []
    for p in files:
        rel = p.relative_to(path).as_posix()
        data = p.read_bytes()
        if p.suffix.lower() in (".html", ".htm"):
            from .reader import Reader

            try:
                d = Reader().document_from_bytes(data, p.name, url=p.resolve().as_uri())
            except Exception:  # noqa: BLE001 - one unreadable file must not sink the build
                continue
            title, text = d.title, d.text
            published = d.published
        else:
            from .decoding import decode_body
            from .errors import UnsupportedContentError

            try:
                text = decode_body(data, "", html=False)  # a BOM or a legacy charset reads as browsers read it
            except UnsupportedContentError:  # binary data named .txt: skipped like an unreadable page
                continue
            title, text = _title_from_file(p, text)
            published = None
        if not text.strip():
            continue
        docs.append(CorpusDoc(rel, title, text, p.resolve().as_uri(), published))
    return docs


def load_corpus(source: Path | None = None) -> list[CorpusDoc]:
    """Documents of a JSONL file or folder (None = the shipped corpus)."""
    path = Path(source) if source is not None else DEFAULT_CORPUS
    if not path.exists():
        raise CorpusError(f"corpus not found: {path}; give a JSONL file or a folder of .txt/.md/.html files")
    docs = _read_folder(path) if path.is_dir() else _read_jsonl(path)
    if not docs:
        raise CorpusError(f"corpus {path} has no documents")
    return docs


def source_fingerprint(source: Path | None) -> str:
    """Changes whenever the source's content changes."""
    path = Path(source) if source is not None else DEFAULT_CORPUS
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES:
                h.update(p.relative_to(path).as_posix().encode() + b"\x00")
                h.update(hashlib.sha256(p.read_bytes()).digest())
    elif path.exists():
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]
