"""The serving benchmark: a small real load test, percentiles, and the Markdown it writes."""

from __future__ import annotations

import pytest

from run.bench import _pct, load, markdown


def test_percentiles_are_nearest_rank():
    assert _pct([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert _pct(list(map(float, range(1, 21))), 95) == 19.0
    assert _pct([], 50) == 0.0


def test_markdown_reports_every_figure():
    results = {
        "date": "2025-01-01",
        "machine": "x86_64, 2 CPUs, threads=all",
        "model": "m.gguf",
        "versions": {"llama_cpp_python": "0.3.36", "python": "3.11"},
        "decode": {
            "plain": {"tokens": 100, "forced": 0, "seconds": 2.0, "tok_s": 50.0, "answers": 12, "valid": 11},
            "gbnf": {"tokens": 90, "forced": 0, "seconds": 2.0, "tok_s": 45.0, "answers": 12, "valid": 12},
            "llguidance": {
                "tokens": 120, "forced": 30, "kept": 110, "seconds": 2.0, "tok_s": 60.0,
                "answers": 12, "valid": 12,
            },
            "vs_plain": 1.2, "vs_gbnf": 1.333, "kept_tok_s": 55.0, "gbnf_vs_plain": 0.9, "forced_share": 0.25,
            "mask_us": {"p50": 410, "p99": 1500, "n": 90}, "rollbacks": {"item": 3},
            "rounds": 2, "prompts": 6, "max_tokens": 7168, "plain_max_tokens": 512,
        },
        "threads": {"threads": 2, "tok_s": {1: 40.0, 2: 46.0}, "ratio": 1.15},
        "latency": {"n": 6, "valid": 6, "p50_s": 1.5, "p95_s": 3.25},
        "load": {
            "clients": 8, "planned": 200, "sent": 200, "failed": 0, "wall_s": 100.0,
            "req_s": 2.0, "p50_s": 3.0, "p95_s": 5.0, "max_tokens": 160,
        },
    }  # fmt: skip
    text = markdown(results)
    for figure in (
        "| 50.0 tok/s (100 tokens, 8 an answer, 11 of 12 answers valid)",
        "2 rounds over the same 6 prompts per path",
        "| 45.0 tok/s",
        "| 60.0 tok/s",
        "| our decoder / unconstrained | 1.2 |",
        "| our decoder / GBNF | 1.333 |",
        "| GBNF / unconstrained | 0.9 |",
        "| 25.0% |",
        "| 55.0 tok/s (110 tokens) |",
        "410 µs / 1500 µs (90 tokens)",
        "| item 3 |",
        "| our decoder at 2 thread(s) / at 1 thread (same prompts, alternating) | 1.15 (46.0 / 40.0 tok/s) |",
        "1.5 s / 3.25 s",
        "| 2.0 req/s",
        "| failed requests | 0 |",
    ):
        assert figure in text


@pytest.mark.model
def test_decode_speed_measures_every_path_on_the_same_prompts(engine):
    from run.bench import PATHS, decode_speed

    result = decode_speed(engine, max_tokens=160, rounds=1, plain_max_tokens=64)
    for path in PATHS:
        assert result[path]["answers"] == 6 and result[path]["tokens"] > 0 and result[path]["tok_s"] > 0
    assert result["llguidance"]["forced"] > 0 and result["gbnf"]["forced"] == 0
    assert result["mask_us"]["n"] > 0 and 0 < result["forced_share"] < 1
    assert engine.constraint.name == "llguidance:output"  # put back


@pytest.mark.model
def test_a_small_load_test_on_loopback_loses_nothing(engine):
    result = load(engine, clients=2, requests=2, max_tokens=160, seconds=600)
    assert result["sent"] == result["planned"] == 4
    assert result["failed"] == 0


@pytest.mark.model
def test_thread_speed_compares_one_thread_with_the_engines_count_and_puts_it_back(engine):
    import llama_cpp

    from run.bench import thread_speed

    own = engine.llama.n_threads
    result = thread_speed(engine, max_tokens=160, rounds=1)
    assert result["threads"] == own and set(result["tok_s"]) == {1, own}
    assert all(speed > 0 for speed in result["tok_s"].values()) and result["ratio"] > 0
    assert llama_cpp.llama_n_threads(engine.llama.ctx) == own
