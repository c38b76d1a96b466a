"""ui.prefs: the sidebar's settings, defaults from the MOESEARCH_* environment, bad stored values dropped."""

from __future__ import annotations

from ui.prefs import MODEL_GGUF, MODEL_OPENAI, Prefs, env_defaults, load_prefs, model_choice


def test_defaults_follow_the_environment(monkeypatch):
    monkeypatch.setenv("MOESEARCH_MODE", "quick")
    monkeypatch.setenv("MOESEARCH_MAX_PAGES", "3")
    monkeypatch.setenv("MOESEARCH_MODEL", "/models/x.gguf")
    p = env_defaults()
    assert p.mode == "quick" and p.max_pages == 3 and p.model == MODEL_GGUF and p.gguf_path == "/models/x.gguf"
    monkeypatch.setenv("MOESEARCH_BACKEND", "openai")
    monkeypatch.setenv("MOESEARCH_OPENAI_URL", "http://127.0.0.1:9/v1")
    assert env_defaults().model == MODEL_OPENAI


def test_stored_values_win_and_bad_ones_are_dropped(monkeypatch):
    monkeypatch.setenv("MOESEARCH_MODE", "quick")
    p = load_prefs({"prefs": {"mode": "deep", "max_pages": -4, "unknown": 1, "time_range": "week"}})
    assert p.mode == "deep" and p.max_pages == Prefs().max_pages and p.time_range == "week"


def test_overrides_for_each_package(monkeypatch):
    monkeypatch.setenv("MOESEARCH_BACKEND", "openai")  # started against a server, then a model file is picked
    p = Prefs(model=MODEL_OPENAI, openai_url=" http://h:1/v1 ", provider="searxng", searxng_url="http://s:2",
              time_range="any", mode="deep", review_plan=True)
    assert p.model_settings_overrides() == {"backend": "openai", "openai_url": "http://h:1/v1"}
    assert p.retrieval_settings_overrides() == {"search_provider": "searxng", "searxng_url": "http://s:2"}
    a = p.agent_settings_overrides()
    assert a["time_range"] is None and a["mode"] == "deep" and a["review_plan"] is False
    assert Prefs(model="qwen3-30b-a3b").model_settings_overrides() == {"model": "qwen3-30b-a3b", "backend": "llamacpp"}
    monkeypatch.setenv("MOESEARCH_BACKEND", "torch")
    assert Prefs(model=MODEL_GGUF, gguf_path="/m/x.gguf").model_settings_overrides() == {
        "model": "/m/x.gguf", "backend": "torch"}


def test_model_choice():
    assert model_choice("embedded") == {"model": "embedded"}
    assert model_choice(" ~/m/x.gguf ") == {"model": MODEL_GGUF, "gguf_path": "~/m/x.gguf"}
