"""Run outputs: library versions, train_summary.json and the loss curves (loss.png)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from data.settings import library_versions

PACKAGES = (
    "unsloth",
    "unsloth_zoo",
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "bitsandbytes",
    "accelerate",
)


def versions() -> dict[str, str]:
    """Versions of the libraries a training run depends on, plus Python and the machine."""
    return library_versions(PACKAGES)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of metrics.jsonl (empty when the file does not exist yet)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_loss(metrics: list[dict[str, Any]], out: Path) -> None:
    """Training and validation loss against the optimizer step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(m["step"], m["loss"]) for m in metrics if "loss" in m]
    val = [(m["step"], m["eval_loss"]) for m in metrics if "eval_loss" in m]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss")
    if val:
        ax.plot(*zip(*val, strict=True), marker="o", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (reply tokens)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """train_summary.json next to the adapter."""
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
