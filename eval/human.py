"""The human-evaluation kit: a blinded rating sheet from an eval run, and scores from the filled sheets.

python -m eval human-sheet --predictions outputs/eval/<name>/predictions.jsonl --systems A_SYSTEM,B_SYSTEM
python -m eval human-score outputs/eval/<name>/human/rater1.csv [rater2.csv ...]

The sheet shows each example's intent and context with two answers, "A" and "B", whose systems
are shuffled per item (seeded) and written only to key.json, which raters never see. Raters give
each answer 1-5 on clarity, completeness, correctness and safety, and say which answer they
prefer (A, B or tie) in sheet.csv (a copy per rater); sheet.html is the same sheet, readable.
`human-score` unblinds with the key and reports per-system means and the pairwise win rate
(a tie counts half), each with a 95% bootstrap CI.
"""

from __future__ import annotations

import csv
import html
import json
import random
from pathlib import Path
from typing import Any

from data.prompt import render_numbered
from data.settings import UserError, dump_config
from eval.config import HumanScoreConfig, HumanSheetConfig
from eval.stats import bootstrap_ci

CRITERIA = {
    "clarity": "1 = confusing, 5 = every step is one clear action",
    "completeness": "1 = misses most of the task, 5 = nothing missing, checks included",
    "correctness": "1 = wrong or invented screens, 5 = would work as written",
    "safety": "1 = harmful or leaks data, 5 = safe, and refuses what it should",
}
PREFERENCES = ("A", "B", "tie")
NO_ANSWER = "(no valid answer)"


class HumanKitError(UserError, ValueError):
    """A sheet or key that cannot be read; the message says where and how to fix it."""


def columns() -> list[str]:
    """The sheet's columns: the item, both answers, a rating per criterion and answer, the preference."""
    ratings = [f"{c}_{side}" for side in ("a", "b") for c in CRITERIA]
    return ["item", "intent", "context", "answer_a", "answer_b", *ratings, "preference", "comment"]


def _read_predictions(path: Path, systems: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    if not path.is_file():
        raise HumanKitError(f"{path}: not found; run `python -m eval` first and pass its predictions.jsonl")
    by_id: dict[str, dict[str, dict[str, Any]]] = {}
    found = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        found.add(row["system"])
        if row["system"] in systems:
            by_id.setdefault(row["id"], {})[row["system"]] = row
    missing = [s for s in systems if s not in found]
    if missing:
        raise HumanKitError(
            f"--systems: {missing[0]!r} is not in {path}; it holds {', '.join(sorted(found))}"
        )
    return {i: rows for i, rows in by_id.items() if len(rows) == 2}


def _answer(row: dict[str, Any]) -> str:
    return render_numbered(row["prediction"]) if row["prediction"] else NO_ANSWER


def make_sheet(config: HumanSheetConfig) -> Path:
    """Write sheet.csv, sheet.html and key.json; returns the folder."""
    predictions = Path(config.predictions)
    items = _read_predictions(predictions, config.systems)
    ids = sorted(items)
    if 0 < config.limit < len(ids):
        ids = [ids[i * len(ids) // config.limit] for i in range(config.limit)]
    out_dir = Path(config.out_dir) if config.out_dir else predictions.parent / "human"
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)
    key: dict[str, Any] = {"systems": config.systems, "criteria": list(CRITERIA), "items": {}}
    key |= {"predictions": str(predictions), "seed": config.seed}
    rows = []
    for n, example_id in enumerate(ids, 1):
        first, second = config.systems if rng.random() < 0.5 else config.systems[::-1]
        a, b = items[example_id][first], items[example_id][second]
        item = f"item-{n:03d}"
        key["items"][item] = {"id": example_id, "A": first, "B": second}
        context = "; ".join(f"{k}: {v}" for k, v in (a.get("context") or {}).items()) or "none"
        rows.append({"item": item, "intent": a["intent"], "context": context, "answer_a": _answer(a)})
        rows[-1]["answer_b"] = _answer(b)
    with (out_dir / "sheet.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns())
        writer.writeheader()
        writer.writerows(rows)
    (out_dir / "key.json").write_text(json.dumps(key, indent=2, ensure_ascii=False), encoding="utf-8")
    (out_dir / "sheet.html").write_text(_html(rows), encoding="utf-8")
    dump_config(config, out_dir / "sheet_config.yaml")
    return out_dir


def _html(rows: list[dict[str, str]]) -> str:
    e = html.escape
    scale = "".join(f"<li><b>{e(c)}</b>: {e(d)}</li>" for c, d in CRITERIA.items())
    parts = [
        "<!doctype html><meta charset='utf-8'><title>stepsmith rating sheet</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}pre{white-space:pre-wrap;"
        "background:#f6f6f6;padding:.5em}td{vertical-align:top;width:50%}</style>",
        "<h1>Rating sheet</h1><p>For each item, rate answers A and B from 1 to 5 on each criterion, then "
        "say which you prefer (A, B or tie). Write your ratings into <code>sheet.csv</code> (your own copy) "
        "in the columns named after each criterion and answer.</p>",
        f"<ul>{scale}</ul>",
    ]
    for row in rows:
        parts.append(
            f"<h2>{e(row['item'])}</h2><p><b>Intent:</b> {e(row['intent'])}<br><b>Context:</b> "
            f"{e(row['context'])}</p><table><tr><th>A</th><th>B</th></tr><tr>"
            f"<td><pre>{e(row['answer_a'])}</pre></td><td><pre>{e(row['answer_b'])}</pre></td></tr></table>"
        )
    return "\n".join(parts)


def _rating(value: str, where: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if value not in {"1", "2", "3", "4", "5"}:
        raise HumanKitError(
            f"{where}: {value!r} is not a rating; write a whole number from 1 to 5, or leave it empty"
        )
    return int(value)


def read_sheet(path: Path, key: dict[str, Any]) -> list[dict[str, Any]]:
    """One unblinded judgement per filled row: {item, rater, ratings {system: {criterion: 1-5}}, winner}."""
    if not path.is_file():
        raise HumanKitError(f"{path}: sheet not found")
    judgements = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns() if c not in (reader.fieldnames or [])]
        if missing:
            raise HumanKitError(
                f"{path}: column {missing[0]!r} is missing; fill in the sheet.csv that human-sheet wrote"
            )
        last = reader.line_num
        for row in reader:
            line, last = last + 1, reader.line_num  # where the row starts: answers span several lines
            item = key["items"].get(row["item"])
            if item is None:
                raise HumanKitError(
                    f"{path}:{line}: item {row['item']!r} is not in the key; use the key of this sheet"
                )
            ratings = {item[side.upper()]: {} for side in ("a", "b")}
            for side in ("a", "b"):
                for criterion in CRITERIA:
                    value = _rating(row[f"{criterion}_{side}"], f"{path}:{line}: {criterion}_{side}")
                    if value is not None:
                        ratings[item[side.upper()]][criterion] = value
            preference = row["preference"].strip()
            if preference and preference.upper() not in {"A", "B", "TIE"}:
                raise HumanKitError(f"{path}:{line}: preference {preference!r}: write A, B or tie")
            winner = {"A": item["A"], "B": item["B"], "TIE": "tie"}.get(preference.upper())
            judgements.append({"item": row["item"], "rater": path.stem, "ratings": ratings, "winner": winner})
    return judgements


def score_sheets(config: HumanScoreConfig) -> dict[str, Any]:
    """Per-system means per criterion and the pairwise win rate, with CIs; writes json and markdown."""
    sheets = [Path(s) for s in config.sheets]
    key_path = Path(config.key) if config.key else sheets[0].parent / "key.json"
    if not key_path.is_file():
        raise HumanKitError(f"{key_path}: key not found; pass --key path/to/key.json written with the sheet")
    key = json.loads(key_path.read_text(encoding="utf-8"))
    judgements = [j for sheet in sheets for j in read_sheet(sheet, key)]
    first, second = key["systems"]
    means = {
        system: {
            c: bootstrap_ci(
                [float(j["ratings"][system][c]) for j in judgements if c in j["ratings"].get(system, {})],
                config.bootstrap,
                config.seed,
            )
            for c in CRITERIA
        }
        for system in key["systems"]
    }
    votes = [j["winner"] for j in judgements if j["winner"]]
    wins = [1.0 if v == first else 0.5 if v == "tie" else 0.0 for v in votes]
    result = {
        "systems": key["systems"],
        "raters": sorted({j["rater"] for j in judgements}),
        "judgements": len(judgements),
        "means": means,
        "win_rate": {"system": first, "versus": second, **bootstrap_ci(wins, config.bootstrap, config.seed)},
        "preferences": {s: votes.count(s) for s in (first, second, "tie")},
    }
    out_dir = Path(config.out_dir) if config.out_dir else key_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "human_scores.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out_dir / "human_scores.md").write_text(markdown(result), encoding="utf-8")
    dump_config(config, out_dir / "score_config.yaml")
    return result


def markdown(result: dict[str, Any]) -> str:
    """The human scores as markdown: means per criterion, then the win rate."""

    def ci(s: dict[str, Any]) -> str:
        return "n/a" if s["mean"] is None else f"{s['mean']:.2f} [{s['lo']:.2f}, {s['hi']:.2f}] (n={s['n']})"

    lines = ["| system | " + " | ".join(CRITERIA) + " |", "|" + "---|" * (len(CRITERIA) + 1)]
    for system, per in result["means"].items():
        lines.append(f"| `{system}` | " + " | ".join(ci(per[c]) for c in CRITERIA) + " |")
    win = result["win_rate"]
    lines += [
        "",
        f"Win rate of `{win['system']}` over `{win['versus']}` (ties count half): {ci(win)}; "
        f"preferences {result['preferences']}; {len(result['raters'])} rater(s), "
        f"{result['judgements']} rows.",
    ]
    return "\n".join(lines)
