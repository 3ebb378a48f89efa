"""The dataset card: counts per domain, language and difficulty, refusals, redactions, dedup."""

from __future__ import annotations

from collections import Counter
from typing import Any

from data.schema import is_refusal
from data.split import language, primary_domain


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def build_card(splits: dict[str, list[dict[str, Any]]], report: dict[str, Any]) -> str:
    """Markdown card from the final splits and the preparation report."""
    every = [r for name in ("train", "val", "test") for r in splits[name]]
    n = len(every)
    lines = [
        "# Dataset card",
        "",
        f"Inputs: {', '.join(report['inputs'])}  ",
        f"Seed: {report['seed']}",
        "",
    ]
    lines += ["## Preparation", ""]
    lines += _table(
        ["stage", "records"],
        [
            ["read", report["read"]],
            ["invalid (skipped)", report["invalid"]],
            ["near-duplicates dropped", len(report["duplicates"])],
            ["kept", n],
        ],
    )
    red = report["redactions"]
    lines += [
        "",
        f"Redacted: {red['records']} records; "
        + ", ".join(f"{k} {v}" for k, v in sorted(red["by_type"].items()))
        + " (placeholders in the records).",
    ]
    lines += [f"Dedup threshold: word-shingle Jaccard >= {report['dedup_threshold']} (pairs in report.json)."]
    lines += ["", "## Splits", ""]
    lines += _table(
        ["split", "records", "refusals", "non-English"],
        [
            [
                name,
                len(rs),
                sum(is_refusal(r["output"]) for r in rs),
                sum(language(r) != "en" for r in rs),
            ]
            for name, rs in splits.items()
        ],
    )
    refusals = sum(is_refusal(r["output"]) for r in every)
    lines += ["", f"Refusals: {refusals} of {n} ({_pct(refusals, n)}).", ""]
    lines += ["## Domains", ""]
    weights = report["domain_weights"]
    by_domain = Counter(primary_domain(r) for r in every)
    rows = []
    for domain in sorted(by_domain):
        per = [sum(primary_domain(r) == domain for r in splits[s]) for s in ("train", "val", "test")]
        rows.append([domain, by_domain[domain], *per, weights.get(domain, "-")])
    lines += _table(["domain", "total", "train", "val", "test", "loss weight"], rows)
    lines += ["", "## Languages", ""]
    langs = Counter(language(r) for r in every)
    lines += _table(["language", "records", "share"], [[k, v, _pct(v, n)] for k, v in sorted(langs.items())])
    lines += ["", "## Difficulty", ""]
    diff = Counter((r.get("meta") or {}).get("difficulty", "unset") for r in every)
    lines += _table(["difficulty", "records"], [[k, v] for k, v in sorted(diff.items())])
    if report.get("tokens"):
        tok = report["tokens"]
        lines += [
            "",
            "## Length in tokens",
            "",
            f"Tokenizer: {tok['tokenizer']} (chat template applied).",
            "",
        ]
        lines += _table(
            ["split", "mean", "p95", "max"],
            [[s, v["mean"], v["p95"], v["max"]] for s, v in tok["splits"].items()],
        )
    lines += [
        "",
        f"Library versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}",
        "",
    ]
    return "\n".join(lines)
