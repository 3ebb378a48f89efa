"""Human-eval kit round trip: predictions -> blinded sheet -> filled copies -> unblinded scores."""

from __future__ import annotations

import csv
import json

import pytest
from records import procedure

from eval.__main__ import evaluate
from eval.config import EvalConfig, HumanScoreConfig, HumanSheetConfig
from eval.human import CRITERIA, HumanKitError, columns, make_sheet, score_sheets


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    """A template-vs-gold eval of eight procedures (no model, no MiniLM: seconds)."""
    folder = tmp_path_factory.mktemp("human")
    rows = [
        {**procedure(f"turn on setting {i}", [f'Tap "Option {i}".', 'Tap "Save".']), "id": f"ex-{i}"}
        for i in range(8)
    ]
    test_file = folder / "test.jsonl"
    test_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    config = EvalConfig(
        model="template",
        systems=["gold"],
        test_file=str(test_file),
        out_root=str(folder / "out"),
        name="kit",
        semantic=False,
        bootstrap=200,
    )
    return evaluate(config) / "predictions.jsonl"


def fill(sheet, out, key, prefer_gold=True, tie_items=()):
    """A rater's copy: gold gets 5 on every criterion, template 2; preference for gold unless a tie."""
    with sheet.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        sides = key["items"][row["item"]]
        for side in ("a", "b"):
            for criterion in CRITERIA:
                row[f"{criterion}_{side}"] = "5" if sides[side.upper()] == "gold" else "2"
        gold_side = "A" if sides["A"] == "gold" else "B"
        row["preference"] = "tie" if row["item"] in tie_items else (gold_side if prefer_gold else "")
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns())
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_sheet_is_blinded_and_the_key_unblinds_it(predictions, tmp_path):
    out = make_sheet(
        HumanSheetConfig(predictions=str(predictions), systems=["template", "gold"], out_dir=str(tmp_path))
    )
    key = json.loads((out / "key.json").read_text())
    sheet = (out / "sheet.csv").read_text()
    assert "template" not in sheet and "gold" not in sheet
    assert len(key["items"]) == 8
    sides = [item["A"] for item in key["items"].values()]
    assert set(sides) == {"template", "gold"}  # the A/B order is shuffled, not fixed
    with (out / "sheet.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:  # the gold answer sits on the side the key says
        gold_side = "a" if key["items"][row["item"]]["A"] == "gold" else "b"
        assert (
            'Tap "Save".' in row[f"answer_{gold_side}"]
            and "Find the option" not in row[f"answer_{gold_side}"]
        )
    assert "<h2>item-001</h2>" in (out / "sheet.html").read_text()


def test_filled_sheets_give_means_and_win_rate(predictions, tmp_path):
    out = make_sheet(
        HumanSheetConfig(predictions=str(predictions), systems=["template", "gold"], out_dir=str(tmp_path))
    )
    key = json.loads((out / "key.json").read_text())
    first = fill(out / "sheet.csv", tmp_path / "rater1.csv", key)
    second = fill(out / "sheet.csv", tmp_path / "rater2.csv", key, tie_items={"item-001", "item-002"})
    result = score_sheets(HumanScoreConfig(sheets=[str(first), str(second)], bootstrap=200))
    assert result["raters"] == ["rater1", "rater2"] and result["judgements"] == 16
    for criterion in CRITERIA:
        assert result["means"]["gold"][criterion]["mean"] == 5.0
        assert result["means"]["template"][criterion]["mean"] == 2.0
    win = result["win_rate"]
    assert (win["system"], win["versus"]) == ("template", "gold")
    assert win["mean"] == pytest.approx(1 / 16)  # two ties at half a win each, over 16 votes
    assert result["preferences"] == {"template": 0, "gold": 14, "tie": 2}
    assert (tmp_path / "human_scores.md").read_text().startswith("| system | clarity")


def test_bad_rating_names_file_line_and_fix(predictions, tmp_path):
    out = make_sheet(
        HumanSheetConfig(predictions=str(predictions), systems=["template", "gold"], out_dir=str(tmp_path))
    )
    key = json.loads((out / "key.json").read_text())
    filled = fill(out / "sheet.csv", tmp_path / "rater.csv", key)
    with filled.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[2]["clarity_a"] = "7"
    with filled.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns())
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(HumanKitError, match="clarity_a: '7' is not a rating; write a whole number") as err:
        score_sheets(HumanScoreConfig(sheets=[str(filled)]))
    line = int(str(err.value).split(":")[1])
    assert filled.read_text().splitlines()[line - 1].startswith("item-003,")


def test_unknown_system_lists_the_ones_there(predictions, tmp_path):
    with pytest.raises(HumanKitError, match="it holds gold, template"):
        make_sheet(
            HumanSheetConfig(predictions=str(predictions), systems=["base", "gold"], out_dir=str(tmp_path))
        )
