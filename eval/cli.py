"""`moesearch eval ...`: run, resume, list and report offline QA evaluations."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from eval.errors import RunConfigError

app = typer.Typer(help="Offline QA evaluation: datasets, resumable runs, metrics with CIs, reports with plots.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def _parse_sets(values: list[str] | None) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in values or []:
        if "=" not in item:
            raise RunConfigError(f"--set takes KEY=VALUE (an agent setting, e.g. deadline_s=120), not {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


@app.command("run")
def run_command(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d",
                                          help="a registered set (see `eval datasets`) or a JSONL path (default: hotpotqa-dev)"),
    mode: Optional[list[str]] = typer.Option(None, "--mode", "-m",
                                             help="deep, quick, closed-book; comma-separated or repeated (default: quick)"),
    model: Optional[str] = typer.Option(None, "--model", help="'embedded', a preset or a .gguf path (default: embedded)"),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="only the first N questions"),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c", help="questions in flight at once (default: 1)"),
    provider: Optional[str] = typer.Option(
        None, "--provider", help="auto (local web for sets with contexts), localweb, searxng, local (default: auto)"),
    searxng_url: Optional[str] = typer.Option(None, "--searxng-url", help="SearXNG base URL (provider searxng)"),
    replay: Optional[Path] = typer.Option(None, "--replay", help="rerun offline against this evidence snapshot"),
    record: Optional[bool] = typer.Option(None, "--record/--no-record", help="write a snapshot of the evidence (default: on)"),
    on_bad_line: Optional[str] = typer.Option(None, "--on-bad-line", help="skip or stop on a malformed line (default: skip)"),
    agent_set: Optional[list[str]] = typer.Option(None, "--set", help="agent setting KEY=VALUE, e.g. deadline_s=120"),
    resume: Optional[str] = typer.Option(None, "--resume", help="continue this run (id or unique prefix)"),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="stop starting questions after N seconds"),
    as_json: bool = typer.Option(False, "--json", help="last line printed: {run_id, scored, metrics}"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar with running EM/F1"),
) -> None:
    """Ask a dataset's questions in one or more modes; one SQLite row per question, resumable at any point."""
    from eval.runner import RunOptions, run_eval

    modes = [m.strip() for item in (mode or []) for m in item.split(",") if m.strip()] or None
    given = {"dataset": dataset, "modes": modes, "model": model, "limit": limit, "concurrency": concurrency,
             "provider": provider, "searxng_url": searxng_url,
             "replay": str(replay.expanduser().resolve()) if replay else None, "record": record,
             "on_bad_line": on_bad_line, "agent": _parse_sets(agent_set) or None}
    options = None
    if resume is None:
        options = RunOptions(**{k: v for k, v in given.items() if v is not None})
        if options.replay and options.provider != "auto":
            raise RunConfigError("--replay serves the snapshot's evidence; drop --provider")
    command = "moesearch " + shlex.join(sys.argv[1:]) if len(sys.argv) > 1 else "moesearch eval run"
    summary = run_eval(options, resume=resume, progress=progress,
                       time_limit_s=time_limit, command=command, given=given)
    for p in summary.problems:
        print(f"warning: skipped malformed dataset line: {p}", file=sys.stderr)
    if as_json:
        print(json.dumps(summary.to_json(), ensure_ascii=False))
        return
    from eval.report import scores_table
    from eval.store import Store

    run = Store().get_run(summary.run_id)
    print(f"run {summary.run_id}: {summary.status}, {summary.scored}/{summary.expected} questions scored, "
          f"{summary.wall_s / 60:.1f} min")
    if summary.snapshot:
        print(f"evidence snapshot: {summary.snapshot}")
    print(scores_table([run], {run.id: summary.metrics}))
    if summary.status != "done":
        print(f"resume with: moesearch eval run --resume {summary.run_id}")


@app.command("report")
def report_command(
    runs: list[str] = typer.Argument(..., help="run ids (or unique prefixes), compared side by side"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for report.md and the plots"),
) -> None:
    """Write a Markdown report with a comparison table and PNG plots; print the table."""
    from eval.report import make_report

    rep = make_report(list(runs), out)
    print(rep.table)
    print(f"\nreport: {rep.markdown}")
    for p in rep.plots:
        print(f"plot: {p}")


@app.command("rescore")
def rescore_command(run: str = typer.Argument(..., help="run id (or unique prefix)"),
                    as_json: bool = typer.Option(False, "--json", help="last line: {run_id, scored, metrics}")) -> None:
    """Recompute a run's metrics from its stored answers (after a metric change), without asking the model again."""
    from eval.report import scores_table
    from eval.runner import rescore_run
    from eval.store import Store

    summary = rescore_run(run)
    if as_json:
        print(json.dumps(summary.to_json(), ensure_ascii=False))
        return
    stored = Store().get_run(summary.run_id)
    print(scores_table([stored], {stored.id: summary.metrics}))


@app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="one JSON object per run")) -> None:
    """Show past runs, newest first."""
    from eval.store import Store

    store = Store()
    runs = store.list_runs()
    if as_json:
        for r in runs:
            print(json.dumps({"run_id": r.id, "created_at": r.created_at, "status": r.status, "dataset": r.dataset,
                              "modes": r.mode_list, "model": r.model, "questions": r.n_questions,
                              "scored": store.count(r.id), "wall_s": r.wall_s, "snapshot": r.snapshot}))
        return
    if not runs:
        print(f"no eval runs in {store.db}; start one with: moesearch eval run --limit 5")
        return
    print(f"{'run':<24} {'created':<26} {'status':<12} {'modes':<24} {'scored':>9} {'min':>6}  dataset / model")
    for r in runs:
        expected = r.n_questions * len(r.mode_list)
        print(f"{r.id:<24} {r.created_at:<26} {r.status:<12} {','.join(r.mode_list):<24} "
              f"{store.count(r.id):>4}/{expected:<4} {r.wall_s / 60:>6.1f}  {r.dataset} / {r.model}")


@app.command("datasets")
def datasets_command() -> None:
    """The registered datasets (any JSONL file with id, question, answers works too)."""
    from eval.datasets import list_datasets

    for d in list_datasets():
        print(f"{d.name:<16} {d.description}  [{d.licence}]  {d.path}")
