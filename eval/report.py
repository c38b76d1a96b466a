"""`moesearch eval report RUN [RUN ...]`: a Markdown report with a comparison table and PNG plots."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval import metrics as M
from eval.errors import RunConfigError
from eval.scoring import SCORE_KEYS, aggregate
from eval.settings import EvalSettings
from eval.store import EvalRun, Store

TABLE_KEYS = ["short_em", "short_f1", "f1", "acc", "recall_fetched", "recall_cited", "cit_precision", "cit_recall",
              "gold_in_fetched"]

METHOD = f"""\
- **EM / F1** (the headline; HotpotQA/SQuAD rules) of the **short answer**, the few words the agent puts on top
  (an entity, a date, yes/no; empty when the evidence does not settle the question, which scores 0): lowercase,
  delete ASCII punctuation, drop a/an/the, collapse whitespace; EM = normalised strings equal; F1 = token-bag
  overlap, best over the gold answers; if either side is yes/no/noanswer and they differ, F1 = 0. Answers made
  before short answers existed have none and show n/a.
- **Text F1**: the same F1 of the whole answer text, after removing `[n]` markers and a trailing sources list; the
  explanation's extra words dilute it (and make its EM, kept in the JSON as `em`, near zero by construction).
- **Contains acc**: a normalised gold answer occurs in the normalised whole answer text as whole words.
- **Recall fetched / cited**: share of the gold supporting titles among the pages the agent read (fetched) and
  among the pages its citations point to. Not defined for closed-book.
- **Answer in pages**: a gold answer (not yes/no) occurs in the text of a page the agent read; only known for a
  local web built from the dataset. It separates retrieval failures from reading/answering failures.
- **Citation precision / recall**: {M.CITATION_METHOD.format(thr=M.SUPPORT_THRESHOLD)}
- **CIs**: 95% percentile bootstrap over questions (seeded, {{resamples}} resamples). A failed question (error,
  timeout) counts as wrong: all its answer scores are 0.
- **Latency**: wall-clock seconds per question as the agent reports it (concurrent questions share the model, so
  latencies include waiting for it); steps: mean seconds per question in each kind of trace step."""


@dataclass
class Report:
    directory: Path
    markdown: Path
    plots: list[Path]
    table: str
    metrics: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # run id -> mode -> metrics


def _pct(est: dict[str, Any]) -> str:
    if est is None or est.get("mean") is None:
        return "n/a"
    if est.get("lo") is None:
        return f"{100 * est['mean']:.1f}"
    return f"{100 * est['mean']:.1f} [{100 * est['lo']:.1f}, {100 * est['hi']:.1f}]"


def _s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def scores_table(runs: list[EvalRun], metrics: dict[str, dict[str, dict[str, Any]]]) -> str:
    labels = dict(SCORE_KEYS)
    head = (["run", "mode", "n", "errors"] + [labels[k] for k in TABLE_KEYS]
            + ["latency p50 s", "latency p95 s", "tokens in", "tokens out"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        for mode, m in metrics[run.id].items():
            cells = [run.id, mode, str(m["n"]), str(m["errors"])] + [_pct(m[k]) for k in TABLE_KEYS]
            cells += [_s(m["latency_s"]["p50"]), _s(m["latency_s"]["p95"]), f"{m['tokens_in']:.0f}",
                      f"{m['tokens_out']:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plots(out: Path, runs: list[EvalRun], metrics: dict[str, dict[str, dict[str, Any]]],
           rows: dict[str, list[Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    multi = len(runs) > 1
    groups = [(run, mode) for run in runs for mode in metrics[run.id]]
    names = [f"{run.id}\n{mode}" if multi else mode for run, mode in groups]
    files: list[Path] = []

    # scores by mode with 95% CI error bars
    keys = ["short_em", "short_f1", "f1", "acc", "recall_fetched", "cit_precision"]
    labels = dict(SCORE_KEYS)
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(groups) + 4.5), 4))
    width = 0.8 / len(keys)
    x = np.arange(len(groups))
    for j, k in enumerate(keys):
        means, err_lo, err_hi = [], [], []
        for run, mode in groups:
            e = metrics[run.id][mode][k]
            mean = 100 * e["mean"] if e["mean"] is not None else 0.0
            means.append(mean)
            err_lo.append(mean - 100 * e["lo"] if e.get("lo") is not None else 0.0)
            err_hi.append(100 * e["hi"] - mean if e.get("hi") is not None else 0.0)
        ax.bar(x + (j - (len(keys) - 1) / 2) * width, means, width, yerr=[err_lo, err_hi], capsize=3,
               label=labels[k])
    ax.set_xticks(x, names)
    ax.set_ylabel("score (%), 95% bootstrap CI")
    ax.set_ylim(0, 100)
    ax.set_title("Scores by mode")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    files.append(out / "scores.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)

    # latency distribution
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(groups) + 3), 4))
    data = [[r.latency_s for r in rows[run.id] if r.mode == mode] or [0.0] for run, mode in groups]
    ax.boxplot(data, showmeans=True)
    for i, d in enumerate(data, start=1):
        ax.scatter(np.full(len(d), i) + np.linspace(-0.15, 0.15, len(d)), d, s=8, alpha=0.5)
    ax.set_xticks(range(1, len(groups) + 1), names)
    ax.set_ylabel("seconds per question")
    ax.set_title("Latency distribution")
    fig.tight_layout()
    files.append(out / "latency.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)

    # per-step time breakdown (stacked mean seconds per question)
    kinds = sorted({k for run, mode in groups for k in metrics[run.id][mode]["step_s"]})
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(groups) + 3), 4))
    bottom = np.zeros(len(groups))
    for kind in kinds:
        vals = np.array([metrics[run.id][mode]["step_s"].get(kind, 0.0) for run, mode in groups])
        ax.bar(names, vals, bottom=bottom, label=kind)
        bottom += vals
    ax.set_ylabel("mean seconds per question")
    ax.set_title("Time per step")
    if kinds:
        ax.legend(fontsize=8)
    fig.tight_layout()
    files.append(out / "steps.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)
    return files


def make_report(run_ids: list[str], out_dir: str | Path | None = None, *, settings: EvalSettings | None = None,
                store: Store | None = None) -> Report:
    """Write ``report.md`` and the plots for one or more runs into `out_dir` (default: reports dir / run ids)."""
    if not run_ids:
        raise RunConfigError("name at least one run; see `moesearch eval list`")
    settings = settings or EvalSettings()
    store = store or Store(settings=settings)
    runs = [store.get_run(r) for r in run_ids]
    rows = {run.id: store.results(run.id) for run in runs}
    metrics = {run.id: aggregate(rows[run.id], resamples=settings.eval_bootstrap) for run in runs}
    out = Path(out_dir) if out_dir else Path(settings.eval_reports_dir) / "+".join(r.id for r in runs)[:120]
    out.mkdir(parents=True, exist_ok=True)
    table = scores_table(runs, metrics)
    plots = _plots(out, runs, metrics, rows)

    md: list[str] = ["# moesearch evaluation report", ""]
    md += ["## Runs", "", "| run | dataset | model | model sha256 | modes | questions | scored | status | run time "
           "| command |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        sha = f"`{run.model_sha256[:12]}`" if getattr(run, "model_sha256", "") else "n/a"
        md.append(f"| {run.id} | {run.dataset} | {run.model} | {sha} | {', '.join(run.mode_list)} | "
                  f"{run.n_questions} | {len(rows[run.id])} | {run.status} | {run.wall_s / 60:.1f} min | "
                  f"`{run.command or 'n/a'}` |")
    md += ["", "## Scores", "", "Percent, mean [95% bootstrap CI]; latency in seconds; tokens are means per question.",
           "", table, ""]
    md += ["## Retrieval vs answer", "",
           "Short-answer F1, text F1 and contains-acc (%) on the questions split two ways: were both gold pages read "
           "(retrieval), and did a page read contain a gold answer (then a wrong answer is the reader's or the "
           "model's).", "",
           "| run | mode | every gold page read: n | F1 | Text F1 | Acc | not all read: n | F1 | Text F1 | Acc "
           "| answer in a page read: n | F1 | Text F1 | Acc | answer in no page read: n | F1 | Text F1 | Acc |",
           "|---|---|" + "---|" * 16]
    for run in runs:
        for mode, m in metrics[run.id].items():
            if mode == "closed-book":
                continue
            cells = []
            for part in (m["f1_by_recall"]["all_gold_fetched"], m["f1_by_recall"]["not_all_fetched"],
                         m["by_evidence"]["answer_in_pages"], m["by_evidence"]["answer_not_in_pages"]):
                cells += [str(part["n"]), _pct({"mean": part.get("short_f1")}), _pct({"mean": part["f1"]}),
                          _pct({"mean": part["acc"]})]
            md.append(f"| {run.id} | {mode} | " + " | ".join(cells) + " |")
    md += ["", "## Time per step", "", "Mean seconds per question.", ""]
    kinds = sorted({k for run in runs for m in metrics[run.id].values() for k in m["step_s"]})
    md += ["| run | mode | " + " | ".join(kinds) + " | total latency |", "|---|---|" + "---|" * (len(kinds) + 1)]
    for run in runs:
        for mode, m in metrics[run.id].items():
            md.append(f"| {run.id} | {mode} | " + " | ".join(f"{m['step_s'].get(k, 0.0):.2f}" for k in kinds)
                      + f" | {_s(m['latency_s']['mean'])} |")
    md += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    md += ["", "## How it is measured", "", METHOD.replace("{resamples}", str(settings.eval_bootstrap)), ""]
    failed = [(run.id, r) for run in runs for r in rows[run.id] if r.error]
    if failed:
        md += [f"## Failed questions ({len(failed)}, counted as wrong)", "", "| run | mode | id | error |",
               "|---|---|---|---|"]
        md += [f"| {rid} | {r.mode} | {r.question_id} | {r.error.replace('|', '/')} |" for rid, r in failed[:50]]
        md.append("")
    md += ["## Examples", ""]
    for run in runs:
        for r in rows[run.id][:3]:
            gold = ", ".join(json.loads(r.gold))
            pred = " ".join(r.prediction.split())[:300]
            short = "" if r.short_answer is None else f"short answer: **{r.short_answer or '(none)'}** " + (
                f"(F1 {100 * r.short_f1:.0f}); " if r.short_f1 is not None else "; ")
            md.append(f"- `{run.id}` {r.mode}: **{r.question}** gold: *{gold}*; {short}answer: {pred or '(none)'} "
                      f"(text F1 {100 * r.f1:.0f})")
    md.append("")
    markdown = out / "report.md"
    markdown.write_text("\n".join(md), encoding="utf-8")
    return Report(out, markdown, plots, table, metrics)
