"""The README stays true: its first two commands are what CI runs, and every setting is documented."""

from __future__ import annotations

import importlib
import re

from tests.conftest import ROOT

SETTINGS = ["model_runtime.settings:ModelSettings", "retrieval.settings:RetrievalSettings",
            "agent.settings:AgentSettings", "ui.settings:UISettings", "eval.settings:EvalSettings"]


def env_names() -> set[str]:
    names = set()
    for spec in SETTINGS:
        module, cls = spec.split(":")
        settings = getattr(importlib.import_module(module), cls)
        names |= {(settings.model_config["env_prefix"] + f).upper() for f in settings.model_fields}
    return names


def test_the_readme_starts_with_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL).group(1).strip().splitlines()
    assert len(block) == 2
    setup_and_run, tests = block
    ci = (ROOT / ".ci" / "run").read_text()
    assert setup_and_run.startswith("./setup.sh && .venv/bin/moesearch ask ")
    assert setup_and_run in ci and tests.replace("-q", "-q -p no:cacheprovider") in ci
    assert "moesearch ui" in readme.split("## ")[0]


def test_every_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    missing = sorted(n for n in env_names() if f"`{n}`" not in readme)
    assert not missing, f"add these settings to the README's table: {missing}"
