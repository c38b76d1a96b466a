"""The `moesearch` command. Each package contributes its command group through the `moesearch.commands` entry
point, so this root never imports a package above `agent` (ui, eval)."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from moesearch_core.errors import UserError, render_error

app = typer.Typer(help="moesearch: an AI search engine that runs on your own machine.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


@app.command("ask")
def ask_command(
    question: str = typer.Argument(..., help="the question, in quotes"),
    mode: str = typer.Option(None, "--mode", "-m", help="deep (plan + reflect), quick (one search round) or closed-book"),
    model: str = typer.Option(None, "--model", help="embedded, a preset name, or a GGUF path"),
    backend: str = typer.Option(None, "--backend", help="llamacpp, openai or torch"),
    openai_url: str = typer.Option(None, "--openai-url", help="an OpenAI-compatible server (sets --backend openai)"),
    provider: str = typer.Option(None, "--provider", help="local (the corpus index) or searxng"),
    searxng_url: str = typer.Option(None, "--searxng-url", help="search the web through this SearXNG instance"),
    corpus: str = typer.Option(None, "--corpus", help="search this JSONL file or folder instead of the default corpus"),
    time_range: str = typer.Option(None, "--time-range", help="day, week, month or year (SearXNG only)"),
    deadline: float = typer.Option(None, "--deadline", help="seconds; answer from what was found by then"),
    as_json: bool = typer.Option(False, "--json", help="print the answer, citations and trace as one JSON object"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="do not show the steps while working"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="also show the model runtime's own log lines"),
) -> None:
    """Answer a question with citations (offline on the embedded defaults)."""
    from agent.console import run_ask

    if any("\udc80" <= c <= "\udcff" for c in question):  # bytes that were not UTF-8, as Python keeps them in argv
        from agent.errors import BadRequestError

        raise BadRequestError("the question is not valid UTF-8 text; set the terminal to UTF-8 (e.g. LANG=C.UTF-8)")

    run_ask(question, mode=mode, model=model, backend=backend, openai_url=openai_url, provider=provider, searxng_url=searxng_url,
            corpus=corpus, time_range=time_range, deadline=deadline, as_json=as_json, quiet=quiet, verbose=verbose)


def _mount_command_groups() -> None:
    for ep in sorted(entry_points(group="moesearch.commands"), key=lambda e: e.name):
        try:
            group = ep.load()
        except (ImportError, AttributeError) as e:  # a package still being built must not break the others
            print(f"warning: command group {ep.name!r} unavailable ({e})", file=sys.stderr)
            continue
        if isinstance(group, typer.Typer):
            app.add_typer(group, name=ep.name)
        else:  # a single command (a function)
            app.command(ep.name)(group)


def _exception_types(name: str) -> tuple[type, ...]:
    """click's exception class `name` from the click package and from typer's vendored copy, where each has it."""
    import importlib

    found = []
    for module in ("click.exceptions", "typer._click.exceptions", "typer.exceptions", "typer"):
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a `UserError` prints one line (`render_error`) and exits with its code; a bug keeps its traceback."""
    _mount_command_groups()
    try:
        app(args=argv, standalone_mode=False)
    except SystemExit as e:
        return int(e.code or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into exit codes
        # typer >= 0.2x raises its own vendored click's exceptions, older typer the click package's: match both
        if isinstance(e, _exception_types("Exit")):
            return e.exit_code
        if isinstance(e, _exception_types("ClickException")):  # usage errors: click prints them in one line
            e.show()
            return e.exit_code
        if isinstance(e, _exception_types("Abort")):
            print("aborted", file=sys.stderr)
            return 1
        if isinstance(e, UserError):
            shown = render_error(e)
            print(f"error: {shown.message}", file=sys.stderr)
            return shown.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
