"""The report: metrics.json, report.md with overall, per-domain and per-language tables, and PNG charts.

`headline_table(metrics)` is the one table docs/benchmarks.md records: each system's main metrics
with 95% bootstrap CIs and its cost per example.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval.stats import LABELS, METRICS, PAIRED

# The columns of the headline table: the metrics the issue's success criterion names, then the rest.
HEADLINE = ("valid", "step_f1", "rouge_l", "bleu", "bertscore_f1", "constraint_sat", "hallucination")
HEADLINE += ("refusal_correct", "repeated", "repeated_items")
# Metrics drawn per domain and per language (the charts stay readable with three bars a group).
GROUP_CHARTS = ("step_f1", "rouge_l", "valid")
GROUP_TABLES = GROUP_CHARTS + ("repeated", "repeated_items")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ci(stat: dict[str, Any]) -> str:
    if stat["mean"] is None:
        return "n/a"
    return f"{stat['mean']:.3f} [{stat['lo']:.3f}, {stat['hi']:.3f}]"


def headline_table(metrics: dict[str, Any] | str | Path) -> str:
    """The headline markdown table (mean [95% CI] per metric, cost per example), from metrics.json."""
    if not isinstance(metrics, dict):
        metrics = json.loads(Path(metrics).read_text(encoding="utf-8"))
    head = ["system", *(LABELS[m] for m in HEADLINE), "s / example", "tokens / example"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for system, stats in metrics["overall"].items():
        cost = metrics["cost"][system]
        cells = [f"`{system}`", *(_ci(stats[m]) for m in HEADLINE)]
        cells += [f"{cost['latency_mean_s']:.2f}", f"{cost['tokens_mean']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    info = metrics["setting"]
    bert = info.get("bertscore") or {}
    lines.append("")
    lines.append(
        f"{info['evaluated']} examples of `{info['test_file']}`; mean [95% bootstrap CI, "
        f"{info['bootstrap']} resamples]. Hallucination and repetition: lower is better. BERTScore: "
        f"{bert.get('model', 'off')}, layer {bert.get('num_layers', '-')}, no idf, no rescaling."
    )
    return "\n".join(lines)


def _group_table(table: dict[str, Any], systems: list[str], metric: str, title: str) -> list[str]:
    lines = [f"| {title} | n | " + " | ".join(f"`{s}`" for s in systems) + " |"]
    lines.append("|" + "---|" * (len(systems) + 2))
    for group, per_system in table.items():
        n = max(v["n"] for v in per_system.values())
        cells = [_fmt(per_system.get(s, {}).get(metric)) for s in systems]
        lines.append(f"| {group} | {n} | " + " | ".join(cells) + " |")
    return lines


def _paired_lines(metrics: dict[str, Any]) -> list[str]:
    diffs = metrics.get("paired") or {}
    if not diffs:
        return []
    lines = [
        f"Paired differences, `{metrics['setting']['system_under_test']}` minus each other system, over the "
        "examples both answered (mean [95% CI]; an interval that excludes 0 is a clear difference):",
        "",
        "| versus | " + " | ".join(LABELS[m] for m in PAIRED) + " |",
        "|" + "---|" * (len(PAIRED) + 1),
    ]
    for other, per_metric in diffs.items():
        lines.append(f"| `{other}` | " + " | ".join(_ci(per_metric[m]) for m in PAIRED) + " |")
    return lines + [""]


def _reference_lines(refs: dict[str, Any]) -> list[str]:
    problems = ", ".join(f"{k}: {v}" for k, v in refs["reference_style_problems"].items()) or "none"
    dropped = ", ".join(f"{k}: {v}" for k, v in refs["context_fields_dropped"].items()) or "none"
    return [
        f"- Test file `{refs['test_file']}`: {refs['read']} examples read, {refs['evaluated']} evaluated, "
        f"{refs['refusals']} reference refusals.",
        f"- References that break the generation style guide (scored, not rejected): "
        f"{refs['references_breaking_style']} ({problems}).",
        f"- Context fields dropped because the schema rejects them: {dropped}.",
    ]


# One line per metric for the report's legend; eval/metrics.py and friends hold the details.
LEGEND = {
    "validity": "the answer parses, validates against data/schema.json and follows the style rules "
    "(no own list markers, imperative steps, at most N steps, a real validation check)",
    "step F1": "one-to-one match of steps on canonical verb + object lemmas (UI-verb synonyms), "
    "similarity >= threshold; ordered step F1 counts only matches in gold order",
    "ROUGE-L / BLEU / BERTScore F1": "rouge-score, sacrebleu (sentence BLEU / 100) and bert-score on the "
    "answer's lines",
    "constraint sat.": "share of gold constraints that some output line states (MiniLM cosine >= threshold)",
    "hallucination": "share of steps naming an app, screen or UI label absent from intent, context, "
    "reference and the generic-UI allow-list (lower is better)",
    "refusal acc.": "the answer is a refusal exactly when the reference is; step and text metrics skip "
    "reference refusals",
    "repeated answers / items": "share of answers with an item that repeats an earlier one (case, "
    "punctuation and whitespace folded, or rapidfuzz ratio >= 97), and mean share of repeated items "
    "(lower is better)",
}


def _setting_lines(metrics: dict[str, Any]) -> list[str]:
    info = metrics["setting"]
    lines = ["## Metrics", "", *(f"- **{k}**: {v}." for k, v in LEGEND.items()), "", "## Setting", ""]
    lines += [f"- {k}: `{v}`" for k, v in metrics["thresholds"].items()]
    lines += [
        f"- engine settings (the rest are serving's defaults): `{json.dumps(info['engine'])}`",
        f"- BERTScore and embeddings: `{json.dumps(info['bertscore'])}`",
        f"- answers reused from the cache: `{json.dumps(info['from_cache'])}`; wall time {info['wall_s']} s; "
        f"seed {info['seed']}",
        f"- library versions: `{json.dumps(metrics['versions'])}`",
        "",
    ]
    return lines


def write_report(out_dir: Path, metrics: dict[str, Any]) -> Path:
    """Write the charts and report.md into out_dir; returns the report's path."""
    systems = list(metrics["overall"])
    charts = plot_all(out_dir, metrics)
    info = metrics["setting"]
    lines = [
        f"# Evaluation: {info['name']}",
        "",
        f"System under test: `{info['system_under_test']}`; compared with "
        + (", ".join(f"`{s}`" for s in systems[1:]) or "nothing")
        + f". Generated by `{info['command']}`.",
        "",
        "## Overall",
        "",
        headline_table(metrics),
        "",
        "| system | ordered step F1 | refusal recall (unsafe) | false refusals (safe) | p50 / p95 s |",
        "|---|---|---|---|---|",
    ]
    for system in systems:
        stats, cost = metrics["overall"][system], metrics["cost"][system]
        lines.append(
            f"| `{system}` | {_ci(stats['step_order_f1'])} | {_ci(stats['refusal_recall'])} | "
            f"{_ci(stats['false_refusal'])} | {cost['latency_p50_s']:.2f} / {cost['latency_p95_s']:.2f} |"
        )
    lines += ["", *_paired_lines(metrics), f"![system comparison]({charts['systems']})", ""]
    for key, title in (("domain", "Per domain"), ("language", "Per language")):
        table = metrics[f"per_{key}"]
        lines += [f"## {title}", ""]
        for metric in GROUP_TABLES:
            lines += [f"**{LABELS[metric]}**", "", *_group_table(table, systems, metric, key), ""]
        lines += [f"![{LABELS[GROUP_CHARTS[0]]} per {key}]({charts[key]})", ""]
    lines += ["## Test set", "", *_reference_lines(metrics["references"]), "", *_setting_lines(metrics)]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _bars(ax, groups: list[str], systems: list[str], value, err=None) -> None:
    import numpy as np

    width = 0.8 / max(1, len(systems))
    x = np.arange(len(groups))
    for i, system in enumerate(systems):
        heights = [value(g, system) or 0.0 for g in groups]
        yerr = None
        if err is not None:
            yerr = np.array([err(g, system) for g in groups]).T
        ax.bar(x + (i - (len(systems) - 1) / 2) * width, heights, width, yerr=yerr, capsize=2, label=system)
    ax.set_xticks(x, groups, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: bars reach 1.0


def plot_all(out_dir: Path, metrics: dict[str, Any]) -> dict[str, str]:
    """systems.png (every metric, CI error bars) and per-domain / per-language step F1 bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(metrics["overall"])
    names = {"systems": "systems.png", "domain": "per_domain.png", "language": "per_language.png"}
    keys = [m for m, _, _ in METRICS if any(metrics["overall"][s][m]["mean"] is not None for s in systems)]

    def err(metric: str, system: str) -> tuple[float, float]:
        stat = metrics["overall"][system][metric]
        if stat["mean"] is None:
            return (0.0, 0.0)
        return (stat["mean"] - stat["lo"], stat["hi"] - stat["mean"])

    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(keys) * max(1, len(systems)) / 2), 4))
    _bars(ax, keys, systems, lambda m, s: metrics["overall"][s][m]["mean"], err)
    ax.set_xticklabels([LABELS[k] for k in keys])
    ax.set_title("Systems compared (mean, 95% bootstrap CI)")
    fig.tight_layout()
    fig.savefig(out_dir / names["systems"], dpi=110)
    plt.close(fig)
    for key in ("domain", "language"):
        table = metrics[f"per_{key}"]
        groups = list(table)
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(groups) * max(1, len(systems)) / 2), 4))
        _bars(ax, groups, systems, lambda g, s, t=table: t[g].get(s, {}).get(GROUP_CHARTS[0]))
        ax.set_ylabel(LABELS[GROUP_CHARTS[0]])
        ax.set_title(f"{LABELS[GROUP_CHARTS[0]]} per {key}")
        fig.tight_layout()
        fig.savefig(out_dir / names[key], dpi=110)
        plt.close(fig)
    return names
