"""Training runs side by side, and one run's learning curve, scored on the validation split.

    python -m eval.sweep --runs sweep-a sweep-b          # the table of tried runs
    python -m eval.sweep --curve smollm2-135m-cpu-full   # quality against training minutes

Each point (a run's best adapter, or one checkpoint of a run) is exported to GGUF with
`python -m export` and scored with `python -m eval` on the validation split beside the template,
each in its own process, one at a time. Rows are kept in outputs/eval/sweep.json (or the run's
curve.json), so runs can be added one by one; the table goes to docs/benchmarks.md, and the curve
as learning_curve.png into docs/ and into the run's eval report folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data import paths
from data.settings import ConfigError, UserError, option, parse_config, user_errors

# Columns of both tables: (metrics.json key, header).
QUALITY = (
    ("step_f1", "step F1"),
    ("rouge_l", "ROUGE-L"),
    ("bertscore_f1", "BERTScore"),
    ("repeated_items", "repeated items"),
)
# The knobs that tell the tried runs apart, from each run's config.yaml.
KNOBS = ("learning_rate", "r", "alpha", "per_device_batch_size", "epochs", "max_steps", "scheduler")


class SweepError(UserError):
    """A point that could not be exported or scored."""


@dataclass
class SweepConfig:
    """Settings of `python -m eval.sweep`."""

    runs: list[str] = option([], "run folders (or names under outputs/) to score with their best adapter")
    curve: str = option("", "one run whose every checkpoint is scored: the learning curve")
    test_file: str = option("data/processed/val.jsonl", "records the points are scored on")
    limit: int = option(24, "evenly spaced examples of --test-file per point; 0 means all")
    timeout_s: float = option(60.0, "per-answer generation limit, as `python -m eval --timeout-s`")
    out_root: str = option(str(paths.EVAL), "folder of eval reports; sweep.json goes here")
    doc: str = option("docs/benchmarks.md", "benchmarks page to update")
    rescore: bool = option(False, "score a point again even when its row exists")

    def __post_init__(self) -> None:
        if bool(self.runs) == bool(self.curve):
            raise ConfigError("give either --runs (the table of runs) or --curve RUN (one run's checkpoints)")
        if self.limit < 0 or self.timeout_s <= 0:
            raise ConfigError("--limit must be >= 0 and --timeout-s > 0")


def run_folder(name: str) -> Path:
    """A run folder from a path or a name under outputs/; it must hold config.yaml."""
    path = Path(name) if Path(name).is_dir() else paths.run_dir(name)
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"{name}: no run folder with config.yaml (looked at {path}); train it first")
    return path


def call(args: list[str], what: str) -> None:
    """One stage in its own process; its output streams through, a failure stops the sweep."""
    print(f"sweep: {what}: {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, *args], check=False)
    if done.returncode != 0:
        raise SweepError(f"{what} failed (exit {done.returncode}); its output is above")


def cached(report: Path, adapter: Path, config: SweepConfig) -> dict[str, Any] | None:
    """An earlier report of this point, if it scored this adapter on the same examples."""
    if config.rescore or not report.is_file() or report.stat().st_mtime < adapter.stat().st_mtime:
        return None
    metrics = json.loads(report.read_text(encoding="utf-8"))
    setting = metrics["setting"]
    from eval.references import file_sha256

    # the same file by content: data/processed/val.jsonl holds other examples after a data change
    same = (
        setting["test_file"] == config.test_file
        and setting.get("test_sha256") == file_sha256(config.test_file)
        and setting["engine"].get("timeout_s") == config.timeout_s
    )
    return metrics if same and (not config.limit or setting["evaluated"] == config.limit) else None


def score(run_dir: Path, name: str, config: SweepConfig) -> dict[str, Any]:
    """Export run_dir (unless its GGUF is newer than its adapter) and eval it; metrics.json.

    A report of the same adapter on the same examples is reused (--rescore scores again).
    """
    adapter = run_dir / "adapter" / "adapter_model.safetensors"
    report = Path(config.out_root) / name / "metrics.json"
    if (earlier := cached(report, adapter, config)) is not None:
        print(f"sweep: {run_dir}: reusing {report}", flush=True)
        return earlier
    if (
        not paths.gguf_file(run_dir).is_file()
        or paths.gguf_file(run_dir).stat().st_mtime < adapter.stat().st_mtime
    ):
        call(["-m", "export", "--run", str(run_dir), "--parity-prompts", "1"], f"export {run_dir}")
    args = ["-m", "eval", "--model", str(run_dir), "--systems", "template", "--name", name]
    args += ["--test-file", config.test_file, "--limit", str(config.limit), "--out-root", config.out_root]
    args += ["--timeout-s", str(config.timeout_s), "--resume", "false"]
    call(args, f"eval {run_dir}")
    return json.loads(report.read_text(encoding="utf-8"))


def quality(metrics: dict[str, Any]) -> dict[str, Any]:
    """The system under test's means (and the template's, for reference)."""
    overall = metrics["overall"]
    mine = overall[metrics["setting"]["system_under_test"]]
    row = {key: mine[key]["mean"] for key, _ in QUALITY}
    row["template"] = {
        key: overall["template"][key]["mean"] for key, _ in QUALITY if key in overall["template"]
    }
    row["examples"] = metrics["setting"]["evaluated"]
    return row


def read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def train_fields(run_dir: Path) -> dict[str, Any]:
    """A run's knobs, steps, train minutes, throughput and best val loss, from its own files."""
    summary_path = run_dir / "train_summary.json"
    if not summary_path.is_file():
        raise ConfigError(f"{summary_path}: not found; the run has not finished training")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    knobs = read_yaml(run_dir / "config.yaml")
    row = {
        "run": run_dir.name,
        "knobs": {k: knobs.get(k) for k in KNOBS},
        "steps": summary["global_step"],
        "train_min": round(summary["wall_time_s"] / 60, 1),
        # Throughput tells whether the run had the cores to itself (other jobs slow it down).
        "tokens_per_s": summary.get("tokens_per_s"),
        "val_loss": summary["best_eval_loss"],
        "best_checkpoint": summary.get("best_checkpoint"),
    }
    return row


def run_row(run_dir: Path, config: SweepConfig) -> dict[str, Any]:
    """One tried run: its train fields, and its quality on validation."""
    return train_fields(run_dir) | quality(score(run_dir, f"sweep-{run_dir.name}", config))


def checkpoint_points(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, checkpoint folder) of a run, in step order."""
    found = []
    for path in (run_dir / "checkpoints").glob("checkpoint-*"):
        if (path / "adapter_model.safetensors").is_file() and path.name.split("-")[-1].isdigit():
            found.append((int(path.name.split("-")[-1]), path))
    if not found:
        raise ConfigError(
            f"{run_dir}/checkpoints: no checkpoint with an adapter; train with --eval-steps > 0"
        )
    return sorted(found)


def scored(row: dict[str, Any] | None, weights: str, examples: str) -> bool:
    """Whether a curve row scored this checkpoint (adapter hash) on these examples (file hash)."""
    return bool(row) and row.get("adapter_sha256") == weights and row.get("test_sha256") == examples


def curve_rows(run_dir: Path, config: SweepConfig, rows: dict[str, Any]) -> dict[str, Any]:
    """Score every checkpoint of run_dir; each becomes a run folder of its own under curve/."""
    from eval.references import file_sha256
    from train.report import read_metrics

    logs = read_metrics(run_dir / "metrics.jsonl")
    examples = file_sha256(config.test_file)
    points = checkpoint_points(run_dir)
    for gone in set(rows) - {str(step) for step, _ in points}:  # of an earlier training of the run
        del rows[gone]
    for step, checkpoint in points:
        key = str(step)
        # A row is reused only for the same checkpoint on the same examples: a retrained run
        # has checkpoints of the same steps, and a data change puts others in val.jsonl.
        weights = file_sha256(checkpoint / "adapter_model.safetensors")
        if not config.rescore and scored(rows.get(key), weights, examples):
            continue
        rows.pop(key, None)
        point = run_dir / "curve" / f"step-{step}"
        adapter = point / "adapter"
        if adapter.exists():
            shutil.rmtree(adapter)
        point.mkdir(parents=True, exist_ok=True)
        shutil.copytree(checkpoint, adapter, ignore=shutil.ignore_patterns("optimizer.pt", "rng_state*"))
        shutil.copy(run_dir / "config.yaml", point / "config.yaml")
        at_step = [m for m in logs if m["step"] == step]
        if not at_step or "elapsed_s" not in at_step[-1]:
            raise ConfigError(f"{run_dir}/metrics.jsonl: no elapsed_s at step {step}; retrain the run")
        val_loss = next((m["eval_loss"] for m in at_step if "eval_loss" in m), None)
        rows[key] = {
            "step": step,
            "epoch": at_step[-1]["epoch"],
            "train_min": round(max(m["elapsed_s"] for m in at_step) / 60, 1),
            "val_loss": val_loss,
            "adapter_sha256": weights,
            "test_sha256": examples,
        } | quality(score(point, f"curve-{run_dir.name}-{step}", config))
        shutil.rmtree(point / "merged", ignore_errors=True)
    return rows


def fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def runs_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the tried runs."""
    head = ["run", "lr", "r/alpha", "batch", "epochs/steps", "train min", "tokens/s", "val loss"]
    head += [h for _, h in QUALITY]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        k = row["knobs"]
        length = f"{k['epochs']} / {row['steps']}" if not k["max_steps"] else f"{row['steps']} steps"
        cells = [
            row["run"],
            f"{k['learning_rate']:g}",
            f"{k['r']}/{k['alpha']}",
            str(k["per_device_batch_size"]),
        ]
        cells += [length, fmt(row["train_min"], 1), fmt(row.get("tokens_per_s"), 0), fmt(row["val_loss"])]
        cells += [fmt(row[key]) for key, _ in QUALITY]
        lines.append("| " + " | ".join(cells) + " |")
    template = rows[0]["template"]
    cells = ["template (reference)", "", "", "", "", "0", "", ""] + [
        fmt(template.get(key)) for key, _ in QUALITY
    ]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve_table(rows: list[dict[str, Any]]) -> str:
    head = ["step", "epoch", "train min", "val loss"] + [h for _, h in QUALITY]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row["step"]), fmt(row["epoch"], 2), fmt(row["train_min"], 1), fmt(row["val_loss"])]
        lines.append("| " + " | ".join(cells + [fmt(row[key]) for key, _ in QUALITY]) + " |")
    return "\n".join(lines)


def plot_curve(rows: list[dict[str, Any]], title: str, outs: list[Path]) -> None:
    """Quality metrics (and validation loss, right axis) against training minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [row["train_min"] for row in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in QUALITY[:3]:
        ax.plot(minutes, [row[key] for row in rows], marker="o", label=label)
        ax.axhline(rows[0]["template"][key], linestyle=":", linewidth=1, color=ax.lines[-1].get_color())
    ax.set_xlabel("training minutes")
    ax.set_ylabel("validation score (dotted: template)")
    ax.grid(alpha=0.3)
    loss = ax.twinx()
    losses = [float("nan") if row["val_loss"] is None else row["val_loss"] for row in rows]
    loss.plot(minutes, losses, color="grey", linestyle="--", marker="x", label="val loss")
    loss.set_ylabel("validation loss")
    handles = ax.get_legend_handles_labels()[0] + loss.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="center right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    for out in outs:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    plt.close(fig)


def header(config: SweepConfig, command: str) -> str:
    from datetime import date

    from train.bench import machine

    limit = f"{config.limit} evenly spaced examples of" if config.limit else "all of"
    return f"{date.today().isoformat()}, {machine()}; `{command}`; scored on {limit} `{config.test_file}`."


def main(config: SweepConfig, command: str) -> int:
    from train.bench import write_section

    out_root = Path(config.out_root)
    if config.runs:
        path = out_root / "sweep.json"
        rows = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        for name in config.runs:
            run_dir = run_folder(name)
            if run_dir.name not in rows or config.rescore:
                rows[run_dir.name] = run_row(run_dir, config)
            else:  # scored already: refresh only what its own files say
                rows[run_dir.name] |= train_fields(run_dir)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        body = "\n".join(
            ["## Training runs tried", "", header(config, command), "", runs_table(list(rows.values()))]
        )
        write_section(Path(config.doc), "sweep", body)
    else:
        run_dir = run_folder(config.curve)
        path = run_dir / "curve" / "curve.json"
        rows = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        rows = curve_rows(run_dir, config, rows)
        path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        ordered = sorted(rows.values(), key=lambda r: r["step"])
        png = Path(config.doc).parent / "learning_curve.png"
        plot_curve(
            ordered,
            f"{run_dir.name}: validation scores against training time",
            [png, out_root / run_dir.name / "learning_curve.png"],
        )
        body = "\n".join(
            [
                "## Learning curve",
                "",
                header(config, command),
                "",
                curve_table(ordered),
                "",
                f"![learning curve]({png.name})",
            ]
        )
        write_section(Path(config.doc), "curve", body)
        report = out_root / run_dir.name / "report.md"
        if report.is_file():  # the run's eval report shows the curve beside its test scores
            table = curve_table(ordered)
            section = (
                f"## Learning curve (validation split)\n\n{table}\n\n![learning curve](learning_curve.png)"
            )
            write_section(report, "curve", section)
    print(body)
    return 0


if __name__ == "__main__":
    with user_errors():
        sys.exit(main(parse_config(SweepConfig, None), "python -m eval.sweep " + " ".join(sys.argv[1:])))
