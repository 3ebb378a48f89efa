"""Aggregation: means with percentile-bootstrap 95% CIs, per-group tables, paired differences, cost.

A metric that does not apply to an example (step F1 on a refusal, constraint satisfaction with
no gold constraints, hallucination with no steps) is None there and left out of its mean; `n`
says how many examples each mean covers.
"""

from __future__ import annotations

from typing import Any

# (key, label, higher_is_better): the metrics every table shows, in order.
METRICS = (
    ("valid", "validity", True),
    ("step_f1", "step F1", True),
    ("step_order_f1", "ordered step F1", True),
    ("rouge_l", "ROUGE-L", True),
    ("bleu", "BLEU", True),
    ("bertscore_f1", "BERTScore F1", True),
    ("constraint_sat", "constraint sat.", True),
    ("hallucination", "hallucination", False),
    ("refusal_correct", "refusal acc.", True),
    ("repeated", "repeated answers", False),
    ("repeated_items", "repeated items", False),
)
LABELS = {key: label for key, label, _ in METRICS}
# The metrics whose paired differences (system under test minus each baseline) the report gives.
PAIRED = ("step_f1", "rouge_l", "bertscore_f1", "valid")


def values(rows: list[dict[str, Any]], metric: str) -> list[float]:
    """The metric's defined values over rows (booleans as 0/1)."""
    out = []
    for row in rows:
        value = row["scores"].get(metric)
        if value is not None:
            out.append(float(value))
    return out


def bootstrap_ci(xs: list[float], resamples: int, seed: int) -> dict[str, Any]:
    """Mean and percentile-bootstrap 95% interval of `xs`; None fields when `xs` is empty."""
    import numpy as np

    if not xs:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    data = np.asarray(xs, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(data.mean()), "lo": float(lo), "hi": float(hi), "n": len(data)}


def by_system(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by system, in first-seen order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["system"], []).append(row)
    return out


def overall(rows: list[dict[str, Any]], resamples: int, seed: int) -> dict[str, dict[str, Any]]:
    """Per system: every metric's mean with its bootstrap CI, and the refusal breakdown."""
    out = {}
    for system, mine in by_system(rows).items():
        stats = {key: bootstrap_ci(values(mine, key), resamples, seed) for key, _, _ in METRICS}
        unsafe = [r for r in mine if r["gold_refusal"]]
        safe = [r for r in mine if not r["gold_refusal"]]
        stats["refusal_recall"] = bootstrap_ci(values(unsafe, "refusal_correct"), resamples, seed)
        stats["false_refusal"] = bootstrap_ci([float(r["scores"]["refused"]) for r in safe], resamples, seed)
        out[system] = stats
    return out


def grouped(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, dict[str, Any]]]:
    """{group: {system: {metric: mean, ..., "n": examples}}} for key 'domain' or 'language'."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row[key], {}).setdefault(row["system"], []).append(row)
    table = {}
    for group in sorted(out):
        table[group] = {}
        for system, mine in out[group].items():
            means = {}
            for metric, _, _ in METRICS:
                xs = values(mine, metric)
                means[metric] = sum(xs) / len(xs) if xs else None
            table[group][system] = {**means, "n": len(mine)}
    return table


def paired_diff(
    rows: list[dict[str, Any]], a: str, b: str, metric: str, resamples: int, seed: int
) -> dict[str, Any]:
    """Mean of system a minus system b over the examples where both have the metric, with its CI."""
    first = {r["id"]: r["scores"].get(metric) for r in rows if r["system"] == a}
    second = {r["id"]: r["scores"].get(metric) for r in rows if r["system"] == b}
    diffs = [
        float(first[i]) - float(second[i])
        for i in first
        if first[i] is not None and second.get(i) is not None
    ]
    return bootstrap_ci(diffs, resamples, seed)


def _percentile(xs: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(xs, q)) if xs else 0.0


def cost(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per system: latency (mean, p50, p95 seconds) and generated tokens (mean) per example."""
    out = {}
    for system, mine in by_system(rows).items():
        latency = [r["latency_s"] for r in mine]
        tokens = [r["tokens"] for r in mine]
        out[system] = {
            "latency_mean_s": round(sum(latency) / len(latency), 3),
            "latency_p50_s": round(_percentile(latency, 50), 3),
            "latency_p95_s": round(_percentile(latency, 95), 3),
            "tokens_mean": round(sum(tokens) / len(tokens), 1),
            "total_s": round(sum(latency), 1),
        }
    return out
