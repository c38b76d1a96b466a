"""moesearch eval: offline QA evaluation.

Datasets (`eval.datasets`, HotpotQA dev shipped as ``hotpotqa-dev``), resumable runs stored in SQLite
(`eval.runner`, `eval.store`: tables ``eval_run`` and ``eval_result``), the evidence the agent uses (`eval.evidence`:
the dataset's paragraphs served as a local web, snapshots and offline replay), metrics with bootstrap CIs
(`eval.metrics`, `eval.scoring`), Markdown/PNG reports (`eval.report`), the `moesearch eval` commands (`eval.cli`)
and a Python API for notebooks (`eval.api`). Results: eval/RESULTS.md.
"""
