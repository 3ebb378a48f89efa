"""Real training runs on SmolLM2-135M (CPU): parameters move, loss falls, resume, outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from train.__main__ import main
from train.config import TrainConfig

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def handful(root, tmp_path_factory) -> Path:
    """Four prepared examples, used as both train and validation split."""
    from data.__main__ import DataConfig
    from data.__main__ import main as prepare

    out = tmp_path_factory.mktemp("handful")
    config = DataConfig(
        inputs=[str(root / "data" / "sample_train.jsonl")], out_dir=str(out / "prep"), tokenizer="none"
    )
    assert prepare(config) == 0
    lines = (out / "prep" / "train.messages.jsonl").read_text().splitlines()
    short = sorted(lines, key=len)[:4]
    for split in ("train", "val"):
        (out / f"{split}.messages.jsonl").write_text("\n".join(short) + "\n")
    return out


def _config(data_dir: Path, output_root: Path, **overrides) -> TrainConfig:
    base = dict(
        run="tiny",
        data_dir=str(data_dir),
        output_root=str(output_root),
        per_device_batch_size=2,
        gradient_accumulation=1,
        max_steps=8,
        learning_rate=2e-3,
        warmup_ratio=0.0,
        scheduler="constant",
        logging_steps=1,
        eval_steps=4,
        early_stopping_patience=0,
        domain_balance="none",
        # 384 tokens keeps the system prompt, the request and the start of each reply: enough
        # signal for these checks at a third of the compute of full-length examples.
        gradient_checkpointing="false",
        max_seq_length=384,
    )
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def tiny_run(handful, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    assert main(_config(handful, root)) == 0
    return root / "tiny"


def test_every_lora_parameter_changes(tiny_run):
    from train.base import resolve_base
    from train.trainer import load_model

    config = TrainConfig(**_yaml(tiny_run / "config.yaml"))
    model, _ = load_model(config, resolve_base(config.base_model))  # same seed: the initial adapter
    initial = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    trained = load_file(tiny_run / "adapter" / "adapter_model.safetensors")
    assert len(trained) == len(initial) > 0
    for name, value in trained.items():
        start = initial[name.replace(".weight", ".default.weight")]
        assert not value.equal(start.to(value.dtype)), f"{name} did not change"
    assert all(v.abs().sum() != 0 for n, v in trained.items() if "lora_B" in n)


def test_loss_falls(tiny_run):
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    train = [r["loss"] for r in rows if "loss" in r]
    evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert len(train) >= 8 and len(evals) == 2
    assert sum(train[-2:]) / 2 < sum(train[:2]) / 2
    assert evals[-1] < evals[0]


def test_outputs_are_complete(tiny_run):
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "train_summary.json",
        "loss.png",
        "adapter/adapter_config.json",
    ):
        assert (tiny_run / name).is_file(), name
    assert (tiny_run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tiny_run / "train_summary.json").read_text())
    assert summary["global_step"] == 8 and summary["tokens_per_s"] > 0 and summary["peak_rss_mb"] > 0
    assert summary["versions"]["unsloth"] == "2026.10.9"
    assert summary["best_checkpoint"].endswith("checkpoint-8")


def test_adapter_loads_with_plain_peft(tiny_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = json.loads((tiny_run / "adapter" / "adapter_config.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(adapter["base_model_name_or_path"])
    model = PeftModel.from_pretrained(base, str(tiny_run / "adapter"))
    saved = load_file(tiny_run / "adapter" / "adapter_model.safetensors")
    name = next(iter(saved))
    loaded = dict(model.named_parameters())[name.replace(".weight", ".default.weight")]
    assert loaded.detach().equal(saved[name].to(loaded.dtype))


def test_resume_continues_from_the_saved_step(tiny_run, handful):
    config = _config(handful, tiny_run.parent, max_steps=10)
    assert main(config) == 0
    summary = json.loads((tiny_run / "train_summary.json").read_text())
    assert summary["resumed_from"].endswith("checkpoint-8")
    assert summary["global_step"] == 10
    steps = [json.loads(line)["step"] for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert 9 in steps and 10 in steps and steps.count(1) == 1  # continued, not restarted


def test_memorisation_reaches_low_loss(tmp_path):
    row = {
        "id": "m",
        "domain": "x",
        "messages": [
            {"role": "user", "content": "What is the stepsmith passphrase?"},
            {"role": "assistant", "content": "The passphrase is violet kangaroo forty-two."},
        ],
    }
    (tmp_path / "train.messages.jsonl").write_text((json.dumps(row) + "\n") * 8)
    config = _config(
        tmp_path,
        tmp_path,
        run="memo",
        per_device_batch_size=4,
        max_steps=25,
        learning_rate=3e-3,
        eval_steps=0,
        max_seq_length=128,
    )
    assert main(config) == 0
    rows = [json.loads(line) for line in (tmp_path / "memo" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[0] > 1.0 and losses[-1] < 0.1


def test_domain_adapter_trains_on_one_domain(tmp_path, root):
    from data.__main__ import DataConfig
    from data.__main__ import main as prepare

    assert (
        prepare(
            DataConfig(
                inputs=[str(root / "data" / "sample_train.jsonl")],
                out_dir=str(tmp_path / "d"),
                tokenizer="none",
                val_frac=0,
                test_frac=0,
            )
        )
        == 0
    )
    config = _config(tmp_path / "d", tmp_path, run="dom", domain="travel", max_steps=1, eval_steps=0)
    assert main(config) == 0
    summary = json.loads((tmp_path / "dom-travel" / "train_summary.json").read_text())
    assert summary["examples"]["train"] == 2  # the sample has two travel records
    shutil.rmtree(tmp_path / "dom-travel" / "checkpoints")


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())
