"""Fine-tune with Unsloth: LoRA on CPU, QLoRA on CUDA.

python -m train --config configs/smollm2-135m-cpu.yaml [--key value ...]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from data.paths import run_dir
from data.settings import dump_config, parse_config, user_errors
from train.base import BaseModelError, resolve_base
from train.config import TrainConfig
from train.dataset import (
    Stats,
    TrainDataError,
    build_split,
    domain_counts,
    mix_in,
    read_messages,
    read_mix,
    stratified_resample,
)
from train.trainer import TrainError, check_backend


def run_dir_of(config: TrainConfig) -> Path:
    """outputs/<run>/, or outputs/<run>-<domain>/ for a domain adapter."""
    return run_dir(config.run, config.domain, config.output_root)


def load_rows(config: TrainConfig, stats: Stats) -> tuple[list, list, dict[str, float]]:
    """Train and validation rows after domain filtering, mixing and balancing."""
    data_dir = Path(config.data_dir)
    train = read_messages(data_dir / "train.messages.jsonl")
    val_path = data_dir / "val.messages.jsonl"
    val = read_messages(val_path, allow_empty=True) if val_path.is_file() else []
    if config.domain:
        known = sorted({r["domain"] for r in train})
        train = [r for r in train if r["domain"] == config.domain]
        val = [r for r in val if r["domain"] == config.domain]
        if not train:
            raise TrainDataError(
                f"--domain {config.domain}: no training examples; known domains: {', '.join(known)}"
            )
    if config.limit:
        train = train[: config.limit]
    if config.eval_limit and len(val) > config.eval_limit:
        # Every k-th example: the split is sorted by id, so a prefix would cover few domains.
        val = val[:: len(val) // config.eval_limit][: config.eval_limit]
    stats.read = {"train": len(train), "val": len(val)}
    weights: dict[str, float] = {}
    weights_path = data_dir / "domain_weights.json"
    if config.domain_balance == "loss" and not config.domain:
        if not weights_path.is_file():
            raise TrainDataError(f"{weights_path}: not found; run `just data` or pass --domain-balance none")
        weights = json.loads(weights_path.read_text(encoding="utf-8"))
    if config.domain_balance == "sampling" and not config.domain:
        train = stratified_resample(train, config.seed)
        stats.resampled = domain_counts(train)
    if config.mix_path and config.mix_ratio > 0:
        before = len(train)
        train = mix_in(train, read_mix(Path(config.mix_path)), config.mix_ratio, config.seed)
        stats.mixed_in = len(train) - before
    return train, val, weights


def main(config: TrainConfig, source: str = "command line") -> int:
    """Train one adapter; returns the exit code."""
    check_backend(config, source)
    run_dir = run_dir_of(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, run_dir / "config.yaml")
    stats = Stats()
    train_rows, val_rows, weights = load_rows(config, stats)
    base = resolve_base(config.base_model)
    print(
        f"train: {len(train_rows)} train / {len(val_rows)} val examples; base {base}; outputs in {run_dir}",
        flush=True,
    )

    from datasets import Dataset

    from train.report import plot_loss, read_metrics, versions, write_summary
    from train.trainer import (
        MetricsLog,
        WeightedCollator,
        load_model,
        run_training,
        sft_config,
        shared_prefix_parts,
        weighted_trainer_class,
    )

    model, tokenizer = load_model(config, base)
    train_ex = build_split(tokenizer, train_rows, config.max_seq_length, weights, stats)
    val_ex = build_split(tokenizer, val_rows, config.max_seq_length, {}, stats) if val_rows else []
    if stats.truncated:
        print(
            f"train: {stats.truncated} examples longer than max_seq_length="
            f"{config.max_seq_length} were truncated"
        )
    if stats.dropped_fully_truncated:
        print(
            f"train: dropped {len(stats.dropped_fully_truncated)} whose reply was cut entirely: "
            f"{', '.join(stats.dropped_fully_truncated[:10])}; raise --max-seq-length"
        )
    metrics_path = run_dir / "metrics.jsonl"
    callbacks = [MetricsLog.create(metrics_path)]
    if val_ex and config.early_stopping_patience > 0 and config.eval_steps > 0:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = weighted_trainer_class()(
        model=model,
        args=sft_config(config, run_dir, has_val=bool(val_ex)),
        train_dataset=Dataset.from_list(train_ex),
        eval_dataset=Dataset.from_list(val_ex) if val_ex else None,
        processing_class=tokenizer,
        data_collator=None if config.packing else WeightedCollator(tokenizer.pad_token_id),
        callbacks=callbacks,
    )
    trainer.shared_prefix = shared_prefix_parts(config, model)
    result = run_training(trainer, config, run_dir)
    adapter = run_dir / "adapter"
    model.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    metrics = read_metrics(metrics_path)
    plot_loss(metrics, run_dir / "loss.png")
    summary = {
        **result,
        "base_model": config.base_model,
        "base_model_path": base,
        "dtype": str(model.dtype).removeprefix("torch."),
        "examples": stats.read,
        "truncated": stats.truncated,
        "dropped_fully_truncated": stats.dropped_fully_truncated,
        "mixed_in": stats.mixed_in,
        "resampled": stats.resampled,
        "versions": versions(),
    }
    write_summary(run_dir, summary)
    print(
        f"train: done in {result['wall_time_s']} s, {result['tokens_per_s']} tokens/s, "
        f"best val loss {result['best_eval_loss']}; adapter in {adapter}",
        flush=True,
    )
    return 0


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, str]:
    """Config from defaults, --config and flags, and where it came from (for error messages)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    configs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    source = configs[-1] if configs else "command line"
    return parse_config(TrainConfig, argv), source


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with user_errors(TrainError, TrainDataError, BaseModelError):
        config, source = parse_args()
        sys.exit(main(config, source))
