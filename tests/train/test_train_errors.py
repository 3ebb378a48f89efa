"""One-line errors of `python -m train`, before any model is loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from train.base import BaseModelError, resolve_base


def _train(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "train", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def _one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_4bit_config_without_cuda_names_the_cpu_config(root):
    line = _one_line_error(_train("--config", "configs/llama3.1-8b-qlora.yaml", cwd=root))
    assert "needs a CUDA GPU" in line and "configs/smollm2-135m-cpu.yaml" in line


def test_unknown_key_lists_valid_keys(root, tmp_path):
    line = _one_line_error(_train("--config", "configs/smollm2-135m-cpu.yaml", "--lora-rank", "8", cwd=root))
    assert "unknown key 'lora_rank'" in line and "Valid keys: run, base_model" in line
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: x\nlearnin_rate: 0.1\n")
    line = _one_line_error(_train("--config", str(bad), cwd=root))
    assert f"{bad}: unknown key 'learnin_rate'" in line


def test_missing_data_says_to_run_data(root, tmp_path):
    line = _one_line_error(
        _train("--data-dir", str(tmp_path / "nope"), "--output-root", str(tmp_path), cwd=root)
    )
    assert "train.messages.jsonl: not found; run `just data` first" in line


def test_broken_data_line_is_located(root, tmp_path):
    good = {
        "id": "a",
        "domain": "x",
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}],
    }
    bad = {"id": "b", "domain": "x", "messages": [{"role": "user", "content": "no reply"}]}
    (tmp_path / "train.messages.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    line = _one_line_error(_train("--data-dir", str(tmp_path), "--output-root", str(tmp_path), cwd=root))
    assert f"{tmp_path / 'train.messages.jsonl'}:2: messages:" in line


def test_unknown_domain_lists_known_ones(root, tmp_path):
    row = {
        "id": "a",
        "domain": "travel",
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}],
    }
    (tmp_path / "train.messages.jsonl").write_text(json.dumps(row) + "\n")
    args = ("--data-dir", str(tmp_path), "--output-root", str(tmp_path), "--domain", "gaming")
    line = _one_line_error(_train(*args, cwd=root))
    assert "--domain gaming: no training examples; known domains: travel" in line


def test_missing_base_model_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(
        BaseModelError, match=r"huggingface-cli download acme/not-a-model .*configs/smollm2-135m-cpu.yaml"
    ):
        resolve_base("acme/not-a-model")
    with pytest.raises(BaseModelError, match="not a model folder"):
        resolve_base(str(tmp_path))
    assert os.environ["HF_HUB_OFFLINE"] == "1"


class _Trainer:
    """Just enough of a transformers Trainer for run_training: it records what it was given."""

    state = SimpleNamespace(global_step=0, best_metric=None, best_model_checkpoint=None)
    trained_tokens = 0

    def train(self, resume_from_checkpoint=None):
        self.resumed = resume_from_checkpoint
        return type("Result", (), {"training_loss": 0.0})()


def _old_run(run_dir):
    (run_dir / "checkpoints" / "checkpoint-36").mkdir(parents=True)
    (run_dir / "checkpoints" / "checkpoint-36" / "trainer_state.json").write_text("{}")
    (run_dir / "metrics.jsonl").write_text('{"step": 36, "loss": 2.4}\n')


def test_a_fresh_run_drops_an_earlier_runs_log_and_checkpoints(tmp_path):
    from train.config import TrainConfig
    from train.trainer import run_training

    _old_run(tmp_path)
    trainer = _Trainer()
    run_training(trainer, TrainConfig(resume=False), tmp_path)
    assert trainer.resumed is None
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "checkpoints").exists()


def test_a_resumed_run_keeps_them(tmp_path):
    from train.config import TrainConfig
    from train.trainer import run_training

    _old_run(tmp_path)
    trainer = _Trainer()
    run_training(trainer, TrainConfig(resume=True), tmp_path)
    assert trainer.resumed == str(tmp_path / "checkpoints" / "checkpoint-36")
    assert (tmp_path / "metrics.jsonl").read_text().startswith('{"step": 36')
