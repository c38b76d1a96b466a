"""The dynamic GPU expert cache (LRU/LFU within a budget) and its replay against static placement."""

from __future__ import annotations

import pytest

from model_runtime.engine.expert_cache import ExpertCache, TraceRecorder, simulate_cache, simulate_static
from model_runtime.engine.loader import load_transformer
from model_runtime.engine.routing_profile import attach_recorder
from tests.model_runtime.gguf_fixtures import random_gguf

SIZES = {"0": [10] * 4}


def test_lru_evicts_the_least_recently_used():
    cache = ExpertCache(20, SIZES, "lru")
    assert cache.access("0", 0) == (False, 10)
    assert cache.access("0", 1) == (False, 10)
    assert cache.access("0", 0) == (True, 0)
    assert cache.access("0", 2) == (False, 10)  # evicts 1, the least recent
    assert set(cache.resident) == {("0", 0), ("0", 2)} and cache.used == 20


def test_lfu_keeps_the_most_used():
    cache = ExpertCache(20, SIZES, "lfu")
    for e in (0, 0, 0, 1, 2):
        cache.access("0", e)
    assert set(cache.resident) == {("0", 0), ("0", 2)}  # 1 (used once, older than 2) went


def test_an_expert_larger_than_the_budget_is_never_loaded():
    cache = ExpertCache(5, SIZES)
    assert cache.access("0", 0) == (False, 0) and cache.used == 0


def test_replays_count_hits_and_bytes():
    trace = [{"0": [0, 1]}, {"0": [0, 2]}, {"0": [0, 1]}]
    static = simulate_static(trace, {"0": [0]})
    assert (static.activations, static.hits, static.bytes_moved) == (6, 3, 0)
    st = simulate_cache(trace, ExpertCache(20, SIZES, "lru"))
    # 0 miss, 1 miss | 0 hit, 2 miss (evicts 1) | 0 hit, 1 miss (evicts 2)
    assert (st.hits, st.bytes_moved, st.tokens) == (2, 40, 3)
    assert st.hit_rate == pytest.approx(2 / 6) and st.bytes_per_token == pytest.approx(40 / 3)


def test_trace_recorder_records_each_token_of_each_layer(tmp_path):
    model, _ = load_transformer(random_gguf(tmp_path, "qwen3moe"), "reference")
    rec = TraceRecorder()
    detach = attach_recorder(model, rec)
    model.forward([1, 2, 3], model.new_cache(8))
    detach()
    assert len(rec.trace) == 3 and all(set(t) == {"0", "1"} for t in rec.trace)
    assert all(len(set(es)) == 2 for t in rec.trace for es in t.values())  # top-2 distinct experts
