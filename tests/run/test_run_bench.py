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
            "plain": {"tokens": 100, "seconds": 2.0, "tok_s": 50.0},
            "grammar": {"tokens": 90, "seconds": 2.0, "tok_s": 45.0},
            "ratio": 0.9,
        },
        "latency": {"n": 6, "valid": 6, "p50_s": 1.5, "p95_s": 3.25},
        "load": {
            "clients": 8, "planned": 200, "sent": 200, "failed": 0, "wall_s": 100.0,
            "req_s": 2.0, "p50_s": 3.0, "p95_s": 5.0, "max_tokens": 160,
        },
    }  # fmt: skip
    text = markdown(results)
    for figure in (
        "| 50.0 tok/s",
        "| 45.0 tok/s",
        "| 0.9 |",
        "1.5 s / 3.25 s",
        "| 2.0 req/s",
        "| failed requests | 0 |",
    ):
        assert figure in text


@pytest.mark.model
def test_a_small_load_test_on_loopback_loses_nothing(engine):
    result = load(engine, clients=2, requests=2, max_tokens=160, seconds=600)
    assert result["sent"] == result["planned"] == 4
    assert result["failed"] == 0
