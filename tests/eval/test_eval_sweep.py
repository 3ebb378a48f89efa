"""The table of tried runs: rows kept across calls, earlier reports reused, the page updated."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from eval.references import file_sha256
from eval.sweep import QUALITY, SweepConfig, cached, curve_rows, main, scored


def _run(root: Path, name: str, lr: float, step_f1: float) -> Path:
    """A trained run folder and its eval report on the validation split, as the sweep leaves them."""
    run = root / "outputs" / name
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    knobs = {"learning_rate": lr, "r": 16, "alpha": 32, "per_device_batch_size": 4, "epochs": 1.0}
    (run / "config.yaml").write_text(yaml.safe_dump(knobs | {"max_steps": 0, "scheduler": "cosine"}))
    summary = {"global_step": 113, "wall_time_s": 366.0, "tokens_per_s": 550.0, "best_eval_loss": 2.2}
    (run / "train_summary.json").write_text(json.dumps(summary))
    scores = {key: {"mean": step_f1} for key, _ in QUALITY}
    val = root / "val.jsonl"
    if not val.is_file():
        val.write_text('{"id": "x"}\n')
    setting = {
        "system_under_test": name,
        "evaluated": 24,
        "test_file": str(val),
        "test_sha256": file_sha256(str(val)),
        "engine": {"timeout_s": 60.0},
    }
    metrics = {
        "setting": setting,
        "overall": {name: scores, "template": {k: {"mean": 0.02} for k, _ in QUALITY}},
    }
    report = root / "eval" / f"sweep-{name}"
    report.mkdir(parents=True)
    (report / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_a_report_on_other_examples_under_the_same_path_is_not_reused(tmp_path):
    run = _run(tmp_path, "a", 1e-3, 0.17)
    report = tmp_path / "eval" / "sweep-a" / "metrics.json"
    config = SweepConfig(
        runs=[str(run)], test_file=str(tmp_path / "val.jsonl"), out_root=str(tmp_path / "eval")
    )
    adapter = run / "adapter" / "adapter_model.safetensors"
    assert cached(report, adapter, config) is not None
    (tmp_path / "val.jsonl").write_text('{"id": "y"}\n')  # the data were prepared again, differently
    assert cached(report, adapter, config) is None


def test_rows_accumulate_across_calls_and_reuse_earlier_reports(tmp_path, capsys):
    config = {
        "test_file": str(tmp_path / "val.jsonl"),
        "out_root": str(tmp_path / "eval"),
        "doc": str(tmp_path / "bench.md"),
    }
    first, second = _run(tmp_path, "a", 1e-3, 0.17), _run(tmp_path, "b", 2e-3, 0.14)
    main(SweepConfig(runs=[str(first)], **config), "python -m eval.sweep --runs a")
    main(SweepConfig(runs=[str(second)], **config), "python -m eval.sweep --runs b")
    assert "reusing" in capsys.readouterr().out  # no export or eval process was started
    rows = json.loads((tmp_path / "eval" / "sweep.json").read_text())
    assert list(rows) == ["a", "b"] and rows["b"]["step_f1"] == 0.14 and rows["a"]["train_min"] == 6.1
    page = (tmp_path / "bench.md").read_text()
    assert "| a | 0.001 | 16/32 | 4 | 1.0 / 113 | 6.1 | 550 | 2.200 | 0.170 |" in page
    assert "| b | 0.002 |" in page and "| template (reference) |" in page


def test_a_curve_row_is_reused_only_for_the_same_checkpoint_on_the_same_examples(tmp_path):
    val = tmp_path / "val.jsonl"
    val.write_text('{"id": "a"}\n', encoding="utf-8")
    run = tmp_path / "run"
    (run / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    weights = run / "checkpoints" / "checkpoint-10" / "adapter_model.safetensors"
    weights.write_bytes(b"step ten")
    (run / "metrics.jsonl").write_text(json.dumps({"step": 10, "epoch": 0.5, "elapsed_s": 60}) + "\n")
    row = {"step": 10, "adapter_sha256": file_sha256(weights), "test_sha256": file_sha256(val)}
    assert scored(row, file_sha256(weights), file_sha256(val))
    assert not scored(row, "retrained", file_sha256(val))  # the run was trained again
    assert not scored(row, file_sha256(weights), "other examples")  # val.jsonl changed
    assert not scored(None, file_sha256(weights), file_sha256(val))
    # A matching row is kept without scoring; a row of a step the run no longer has is dropped.
    rows = {"10": row, "113": {"step": 113}}
    kept = curve_rows(run, SweepConfig(curve="run", test_file=str(val)), rows)
    assert kept == {"10": row}
