"""bench-train's summary: per-round ratios against plain TRL, medians, and the table built from them."""

from __future__ import annotations

import pytest

from train.bench import markdown, summarize


def _result(tokens_per_s: float, rss: float, dtype: str = "float32") -> dict:
    return {
        "tokens_per_s": tokens_per_s,
        "peak_rss_mb": rss,
        "wall_time_s": 100.0,
        "final_loss": 2.5,
        "dtype": dtype,
    }


def test_each_round_is_compared_with_the_baseline_of_the_same_round():
    # The machine slowed down by half in round 2: per-round ratios stay 2.0, while a ratio of
    # medians across rounds would not be what either round measured.
    rounds = {
        "ours": [_result(200, 5000, "bfloat16"), _result(100, 5200, "bfloat16")],
        "ours-fp32": [_result(150, 6000), _result(75, 6000)],
        "ours-stock": [_result(120, 7000, "bfloat16"), _result(90, 7000, "bfloat16")],
        "trl": [_result(100, 9000), _result(50, 9000)],
    }
    summary = summarize(rounds)
    assert summary["ratios"]["ours"] == {"per_round": [2.0, 2.0], "median": 2.0}
    assert summary["ratios"]["ours-fp32"]["median"] == 1.5
    assert summary["ratios"]["ours-stock"] == {"per_round": [1.2, 1.8], "median": 1.5}
    assert "trl" not in summary["ratios"]
    assert summary["rows"]["ours"]["tokens_per_s"] == 150.0
    assert summary["rows"]["ours"]["peak_rss_mb"] == 5100.0
    assert summary["rows"]["ours"]["dtype"] == "bfloat16"

    table = markdown(summary, 8, 4, "python -m train.bench --steps 8")
    assert "| 2.0 (2.0, 2.0) |" in table
    assert "**2.0x** plain TRL's tokens/s, at **0.57x** its peak RSS" in table
    assert "it runs at 1.5x, so that step is worth 1.33x here" in table
    assert "In float32, like the baseline, it runs at 1.5x: Unsloth's bfloat16 pick is worth 1.33x" in table


def test_without_a_float32_row_the_table_says_nothing_of_one():
    rounds = {"ours": [_result(130, 5000)], "ours-stock": [_result(110, 7000)], "trl": [_result(100, 9000)]}
    table = markdown(summarize(rounds), 8, 4, "python -m train.bench --repeats 1")
    assert "In float32" not in table
    assert "`--dtype float32`" not in table
    assert "**1.3x**" in table


def test_the_peft_forward_row_states_what_the_fused_projection_is_worth():
    rounds = {
        "ours": [_result(180, 5000)],
        "ours-stock": [_result(170, 5000)],
        "ours-peft": [_result(120, 6000)],
        "trl": [_result(100, 9000)],
    }
    table = markdown(summarize(rounds), 8, 4, "python -m train.bench --repeats 1")
    assert (
        "| stepsmith trainer, PEFT's LoRA forward (`--fused-lora false`) | float32 | 120 | 1.2 (1.2) |"
        in table
    )
    assert "it runs at 1.2x, so the fused projection is worth 1.50x here" in table


def test_a_missing_baseline_round_is_an_error_not_a_shorter_list():
    rounds = {"ours": [_result(130, 5000), _result(120, 5000)], "trl": [_result(100, 9000)]}
    with pytest.raises(ValueError):
        summarize(rounds)
