"""The eval section of docs/benchmarks.md: the verdict on the model vs a baseline, by their CIs."""

import pytest

from data.settings import ConfigError
from eval.bench import verdict


def _metrics(tuned: tuple, base: tuple) -> dict:
    def ci(mean, lo, hi):
        return {"mean": mean, "lo": lo, "hi": hi}

    return {
        "setting": {"system_under_test": "tuned"},
        "overall": {
            "tuned": {key: ci(*tuned) for key in ("step_f1", "rouge_l", "bertscore_f1")},
            "base": {key: ci(*base) for key in ("step_f1", "rouge_l", "bertscore_f1")},
        },
    }


def test_disjoint_intervals_beat_and_overlapping_ones_do_not():
    clear = verdict(_metrics((0.40, 0.30, 0.50), (0.05, 0.00, 0.10)), "base")
    assert len(clear) == 3 and all("beats `base`" in line and "do not overlap" in line for line in clear)
    close = verdict(_metrics((0.40, 0.30, 0.50), (0.35, 0.25, 0.45)), "base")
    assert all("does not clearly beat" in line and "overlap)" in line for line in close)
    worse = verdict(_metrics((0.05, 0.00, 0.10), (0.40, 0.30, 0.50)), "base")
    assert all("does not clearly beat" in line for line in worse)


def test_a_paired_difference_above_zero_beats_even_when_the_intervals_overlap():
    metrics = _metrics((0.40, 0.30, 0.50), (0.35, 0.25, 0.45))
    metrics["paired"] = {
        "base": {key: {"mean": 0.05, "lo": 0.01, "hi": 0.09} for key in ("step_f1", "rouge_l")}
    }
    metrics["paired"]["base"]["bertscore_f1"] = {"mean": 0.02, "lo": -0.01, "hi": 0.05}
    lines = verdict(metrics, "base")
    assert all(
        "beats `base`" in line and "difference +0.050 [+0.010, +0.090], above 0" in line for line in lines[:2]
    )
    assert "does not clearly beat" in lines[2] and "not above 0" in lines[2]


def test_a_missing_baseline_is_named():
    with pytest.raises(ConfigError, match="no system 'zero'; it has tuned, base"):
        verdict(_metrics((0.4, 0.3, 0.5), (0.1, 0.0, 0.2)), "zero")


def test_stage_times_sum_the_finished_stages_only():
    from eval.bench import stage_times

    stamps = {
        "data": {"state": "done", "seconds": 24.4},
        "train": {"state": "done", "seconds": 654.2},
        "export": {"state": "started"},
    }
    assert stage_times(stamps) == (
        "Stage times of the `just demo` that produced it: data 24 s, train 654 s; 11.3 min in all."
    )
    assert stage_times({"data": {"state": "started"}}) == ""
