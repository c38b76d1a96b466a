"""docker-compose.yml checked without a Docker engine: parsed, cross-checked against the code, its commands run."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import ROOT, free_port, moesearch_server

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SETTINGS_CLASSES = ["model_runtime.settings:ModelSettings", "retrieval.settings:RetrievalSettings",
                    "agent.settings:AgentSettings", "ui.settings:UISettings", "eval.settings:EvalSettings"]


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(e.split("=", 1) for e in env) if isinstance(env, list) else {k: str(v) for k, v in env.items()}


def setting_names() -> set[str]:
    names = set()
    for spec in SETTINGS_CLASSES:
        module, cls = spec.split(":")
        settings = getattr(importlib.import_module(module), cls)
        prefix = settings.model_config.get("env_prefix", "")
        names |= {(prefix + field).upper() for field in settings.model_fields}
    return names


def port_of(name: str) -> int:
    """The port a service listens on inside the network: its command's --port, else its settings file."""
    cmd = SERVICES[name].get("command") or []
    if "--port" in cmd:
        return int(cmd[cmd.index("--port") + 1])
    if name == "searxng":
        return yaml.safe_load((ROOT / "deploy/searxng/settings.yml").read_text())["server"]["port"]
    raise AssertionError(f"no known port for {name}")


def test_every_service_has_a_healthcheck():
    for name, service in SERVICES.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_the_app_reaches_services_by_name_and_port():
    app = env_of(SERVICES["app"])
    aliases = {a: n for n, s in SERVICES.items() for a in (s.get("networks", {}).get("default") or {}).get(
        "aliases", [])}
    for key in ("MOESEARCH_OPENAI_URL", "MOESEARCH_SEARXNG_URL"):
        url = app[key].split(":-", 1)[-1].rstrip("}") if app[key].startswith("${") else app[key]
        host, port = urlparse(url).hostname, urlparse(url).port
        assert host not in {"localhost", "127.0.0.1"}, f"{key} must name a service, not {host}"
        target = aliases.get(host, host)
        assert target in SERVICES, f"{key} names {host}, which is not a service"
        assert port == port_of(target), f"{key} uses port {port}, {target} listens on {port_of(target)}"
    deps = SERVICES["app"]["depends_on"]
    assert deps["searxng"]["condition"] == "service_healthy"
    assert {deps[m]["condition"] for m in ("model-cpu", "model-gpu")} == {"service_healthy"}
    assert "host.docker.internal:host-gateway" in SERVICES["app"]["extra_hosts"]


def test_gpu_profile_reserves_the_gpu_and_both_model_servers_answer_as_model():
    gpu = SERVICES["model-gpu"]
    assert gpu["profiles"] == ["gpu"] and SERVICES["model-cpu"]["profiles"] == ["cpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["build"]["args"]["GPU"] == "cuda"
    for name in ("model-cpu", "model-gpu"):
        assert SERVICES[name]["networks"]["default"]["aliases"] == ["model"]
    assert "COMPOSE_PROFILES=cpu" in (ROOT / ".env").read_text()


def test_volumes_persist_the_database_and_the_models():
    named = set(COMPOSE["volumes"])

    def mounts(service):
        return {v.split(":")[1]: v.split(":")[0] for v in SERVICES[service]["volumes"]}

    app, db = mounts("app"), Path(env_of(SERVICES["app"])["MOESEARCH_DB"])
    assert any(db.is_relative_to(target) and source in named for target, source in app.items())
    for name in ("model-cpu", "model-gpu"):
        models_dir = env_of(SERVICES[name])["MOESEARCH_MODELS_DIR"]
        assert mounts(name).get(models_dir) in named


def test_environment_names_are_settings_the_code_reads():
    known = setting_names()
    for name, service in SERVICES.items():
        for key in env_of(service):
            if key.startswith("MOESEARCH_"):
                assert key in known, f"{name} sets {key}, which no settings class reads"


def test_searxng_settings_enable_json():
    settings = yaml.safe_load((ROOT / "deploy/searxng/settings.yml").read_text())
    assert "json" in settings["search"]["formats"]
    assert settings["server"]["limiter"] is False
    assert "SEARXNG_SECRET" in str(SERVICES["searxng"]["environment"])
    mounted = SERVICES["searxng"]["volumes"][0].split(":")
    assert (ROOT / mounted[0]).resolve() == (ROOT / "deploy/searxng/settings.yml").resolve()
    assert mounted[1] == "/etc/searxng/settings.yml"


def test_the_dockerfile_builds_for_generic_cpus_as_a_non_root_user():
    text = (ROOT / "Dockerfile").read_text()
    assert "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" in text and "-DGGML_CUDA=on" in text
    assert "USER moesearch" in text and text.count("FROM ") >= 2
    targets = {s["build"]["target"] for s in SERVICES.values() if "build" in s}
    assert targets == {"runtime"} and "AS runtime" in text


def _serve(args: list[str], health: str, env: dict, timeout: float = 300) -> None:
    """Start a compose command outside Docker on 127.0.0.1, wait for its health endpoint, stop it."""
    with moesearch_server(args, health, env=env, timeout=timeout):
        pass


def _compose_command(service: str, port: int) -> list[str]:
    cmd = list(SERVICES[service]["command"])
    assert cmd[0] == "moesearch"
    cmd[cmd.index("--host") + 1] = "127.0.0.1"  # outside Docker, tests listen on loopback only
    cmd[cmd.index("--port") + 1] = str(port)
    return cmd[1:]


@pytest.mark.slow
def test_the_model_and_app_commands_run_for_real(tmp_path):
    env = {**os.environ, "MOESEARCH_DATA_DIR": str(tmp_path), "MOESEARCH_DB": str(tmp_path / "moesearch.db")}
    port = free_port()
    _serve(_compose_command("model-cpu", port), f"http://127.0.0.1:{port}/health", env)
    port = free_port()
    _serve(_compose_command("app", port), f"http://127.0.0.1:{port}/_stcore/health", env)
