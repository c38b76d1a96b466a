"""Retrieval commands: `moesearch index ...`, `moesearch web serve`, `moesearch search`, `moesearch fetch`."""

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from .errors import BadQueryError, RetrievalError

index_app = typer.Typer(help="Build and update the local corpus index (BM25 + dense vectors).", no_args_is_help=True,
                        pretty_exceptions_enable=False, add_completion=False)
web_app = typer.Typer(help="The local web: corpus pages and a SearXNG-compatible search API on 127.0.0.1.",
                      no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def _settings(**overrides):
    from .settings import RetrievalSettings

    return RetrievalSettings(**{k: v for k, v in overrides.items() if v is not None})


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


@index_app.command("build")
def index_build(
    source: Optional[Path] = typer.Argument(None, help="JSONL file or folder of .txt/.md/.html; default: the shipped corpus"),
    index_dir: Optional[Path] = typer.Option(None, "--index-dir", help="where to write the index"),
    force: bool = typer.Option(False, "--force", help="rebuild even when the index is up to date"),
    bm25_only: bool = typer.Option(False, "--bm25-only", help="no dense vectors (faster, lower quality)"),
) -> None:
    """Index a corpus (passages, BM25, dense vectors); reuses an up-to-date index unless --force."""
    from .index import CorpusIndex, default_index_dir

    settings = _settings()
    t0 = time.perf_counter()
    idx = CorpusIndex.open(settings, source, index_dir=index_dir, dense=not bm25_only, progress=True, rebuild=force)
    took = time.perf_counter() - t0
    path = index_dir or default_index_dir(settings, source)
    print(f"index ready: {len(idx.docs)} documents, {len(idx.passages)} passages in {path} ({took:.1f}s)")
    if source is not None:
        print(f"search it with: moesearch search QUERY --corpus {source}")


@index_app.command("add")
def index_add(
    source: Path = typer.Argument(..., help="JSONL file or folder with the documents to add"),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="the corpus whose index grows; default: the shipped one"),
    index_dir: Optional[Path] = typer.Option(None, "--index-dir"),
) -> None:
    """Add documents to an index: only new or changed documents are embedded."""
    from .corpus import load_corpus
    from .index import CorpusIndex

    settings = _settings(corpus=corpus)
    idx = CorpusIndex.open(settings, index_dir=index_dir, progress=True)
    docs = load_corpus(source)
    stats = idx.add(docs, progress=True)
    print(f"added {stats['added']}, replaced {stats['replaced']}, unchanged {stats['skipped']}; "
          f"index now has {len(idx.docs)} documents, {len(idx.passages)} passages")


@index_app.command("info")
def index_info(
    corpus: Optional[Path] = typer.Option(None, "--corpus"),
    index_dir: Optional[Path] = typer.Option(None, "--index-dir"),
) -> None:
    """Show an index's size and fingerprints."""
    from .errors import IndexError_
    from .index import CorpusIndex, default_index_dir

    settings = _settings(corpus=corpus)
    path = index_dir or default_index_dir(settings, settings.corpus)
    if not (path / "meta.json").exists():
        raise IndexError_(f"no index at {path}; build it with `moesearch index build`")
    print(json.dumps(CorpusIndex.load(path, settings).meta, indent=1))


@web_app.command("serve")
def web_serve(
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="JSONL file or folder; default: the shipped corpus"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8888, "--port"),
) -> None:
    """Serve the corpus as web pages plus a SearXNG-compatible JSON search API, until Ctrl-C."""
    from .localweb import LocalWeb

    if not 0 <= port <= 65535:
        raise BadQueryError(f"port must be between 0 and 65535, not {port}")
    web = LocalWeb(corpus, host=host, port=port)
    try:
        web._server = None
        import threading

        def announce() -> None:
            web.wait_ready()
            print(f"serving {len(web.docs)} documents at {web.url} ; use it as a search engine with "
                  f"MOESEARCH_SEARCH_PROVIDER=searxng MOESEARCH_SEARXNG_URL={web.search_url}", flush=True)

        threading.Thread(target=announce, daemon=True).start()
        web.serve_forever()
    except OSError as e:
        raise RetrievalError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port") from None
    except KeyboardInterrupt:
        pass


def _hit_json(h) -> dict:
    return {"url": h.url, "title": h.title, "snippet": h.snippet, "score": round(float(h.score), 6),
            "published": h.published, "engine": h.engine}


def search_command(
    query: Optional[str] = typer.Argument(None, help="what to search for"),
    provider: Optional[str] = typer.Option(None, "--provider", help="local or searxng (default: MOESEARCH_SEARCH_PROVIDER)"),
    k: int = typer.Option(5, "--k", help="number of hits"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    queries: Optional[Path] = typer.Option(None, "--queries", help="file with one query per line; prints JSON lines"),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="local provider: JSONL file or folder"),
    searxng_url: Optional[str] = typer.Option(None, "--searxng-url"),
    time_range: Optional[str] = typer.Option(None, "--time-range", help="day, week, month or year"),
    language: Optional[str] = typer.Option(None, "--language", help="e.g. en, de-CH"),
) -> None:
    """Search the local corpus or a SearXNG instance: hits with url, title, snippet and score."""
    from .providers import make_provider

    if provider is not None and provider not in ("local", "searxng"):
        raise BadQueryError(f"--provider must be local or searxng, not {provider!r}")
    if searxng_url and provider is None:
        provider = "searxng"
    settings = _settings(search_provider=provider, corpus=corpus, searxng_url=searxng_url)
    if queries is None and query is None:
        raise BadQueryError("give a QUERY or --queries FILE")
    p = make_provider(settings)
    if hasattr(p, "progress"):
        p.progress = True
    try:
        if queries is not None:
            try:
                lines = queries.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise BadQueryError(f"cannot read --queries file {queries}: {getattr(e, 'strerror', e)}") from None
            for line in lines:
                if not line.strip():
                    continue
                try:
                    res = p.search(line, k, time_range=time_range, language=language)
                    out = {"query": line, "hits": [_hit_json(h) for h in res.hits], "warnings": res.warnings}
                except RetrievalError as e:
                    out = {"query": line, "hits": [], "error": str(e)}
                print(json.dumps(out, ensure_ascii=False), flush=True)
            return
        res = p.search(query, k, time_range=time_range, language=language)
    finally:
        p.close()
    if as_json:
        print(json.dumps({"query": query, "hits": [_hit_json(h) for h in res.hits], "warnings": res.warnings},
                         ensure_ascii=False, indent=1))
        return
    for w in res.warnings:
        _err(f"warning: {w}")
    if not res.hits:
        print("no results")
    for i, h in enumerate(res.hits, 1):
        date = f" ({h.published})" if h.published else ""
        snippet = h.snippet if len(h.snippet) <= 240 else h.snippet[:240].rsplit(" ", 1)[0] + " …"
        print(f"{i}. {h.title}{date}  [{h.score:.4f}]\n   {h.url}\n   {snippet}")


def fetch_command(
    url: str = typer.Argument(..., help="http(s) URL"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    query: Optional[str] = typer.Option(None, "--query", help="also rank the page's passages for this query"),
    k: int = typer.Option(3, "--k", help="passages to show with --query"),
    no_cache: bool = typer.Option(False, "--no-cache", help="do not read or write the fetch cache"),
    searxng_url: Optional[str] = typer.Option(None, "--searxng-url", help="its origin may be fetched even if private"),
) -> None:
    """Fetch one page and print its extracted text (a refused or failed URL exits non-zero with one line)."""
    import asyncio

    from .fetcher import Fetcher
    from .reader import Reader

    settings = _settings(searxng_url=searxng_url)

    async def go():
        async with Fetcher(settings, cache=not no_cache) as f:
            return await f.fetch(url)

    page = asyncio.run(go())
    reader = Reader(settings)
    doc = reader.extract(page)
    passages = reader.rank(doc, query, k) if query else []
    if as_json:
        print(json.dumps({"url": page.url, "requested_url": page.requested_url, "status": page.status,
                          "content_type": page.content_type, "from_cache": page.from_cache, "title": doc.title,
                          "published": doc.published, "author": doc.author, "text": doc.text,
                          "passages": [{"text": p.text, "start": p.start, "end": p.end, "score": p.score}
                                       for p in passages]}, ensure_ascii=False, indent=1))
        return
    print(doc.title)
    print(page.url + (f"  (published {doc.published})" if doc.published else "") + ("  [cached]" if page.from_cache else ""))
    print()
    if passages:
        for i, p in enumerate(passages, 1):
            print(f"[{i}] ({p.start}-{p.end}) {p.text}\n")
    else:
        print(doc.text)
