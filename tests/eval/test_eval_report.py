"""A real, small eval: base SmolLM2 zero-shot (plus a grammar ablation), template and gold on 3 examples."""

from __future__ import annotations

import json

import pytest

from eval.__main__ import evaluate
from eval.config import EvalConfig
from eval.report import headline_table

pytestmark = pytest.mark.model

# Two short procedures and one unsafe intent (refused by run/'s safety rules before any model runs).
IDS = ("ecommerce-001", "ecommerce-002", "ecommerce-006")


@pytest.fixture(scope="module")
def small_eval(root, tmp_path_factory):
    records = {}
    for line in (root / "data/raw/ecommerce.jsonl").open(encoding="utf-8"):
        record = json.loads(line)
        records[record["id"]] = record
    folder = tmp_path_factory.mktemp("eval")
    test_file = folder / "test.jsonl"
    test_file.write_text("\n".join(json.dumps(records[i]) for i in IDS) + "\n", encoding="utf-8")
    # 256 tokens and no self-check revisions keep each answer to a few seconds on 2 CPU cores.
    config = EvalConfig(
        model="base",
        systems=["template", "gold"],
        ablate=["grammar"],
        test_file=str(test_file),
        name="small",
        out_root=str(folder / "out"),
        max_tokens=256,
        selfcheck_rounds=0,
        bootstrap=200,
    )
    out_dir = evaluate(config)
    return config, out_dir


def read_rows(out_dir):
    return [json.loads(line) for line in (out_dir / "predictions.jsonl").read_text().splitlines()]


def test_report_folder_holds_every_artifact(small_eval):
    _, out_dir = small_eval
    for name in ("predictions.jsonl", "metrics.json", "report.md", "config.yaml", "cache/base.jsonl"):
        assert (out_dir / name).is_file(), name
    for chart in ("systems.png", "per_domain.png", "per_language.png"):
        assert (out_dir / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", chart
    report = (out_dir / "report.md").read_text()
    for needle in ("![system comparison](systems.png)", "per_domain.png", "## Per domain", "## Per language"):
        assert needle in report
    for system in ("base", "base-no-grammar", "template", "gold"):
        assert f"`{system}`" in report


def test_scores_gold_template_and_model(small_eval):
    _, out_dir = small_eval
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert list(metrics["overall"]) == ["base", "base-no-grammar", "template", "gold"]
    gold = metrics["overall"]["gold"]
    for key in ("valid", "step_f1", "step_order_f1", "rouge_l", "bleu", "constraint_sat", "refusal_correct"):
        assert gold[key]["mean"] == pytest.approx(1.0), key
    assert gold["bertscore_f1"]["mean"] == pytest.approx(1.0, abs=1e-4)
    assert gold["hallucination"]["mean"] == 0.0
    template = metrics["overall"]["template"]
    assert template["valid"]["mean"] == 1.0 and template["step_f1"]["mean"] < 0.5
    assert template["refusal_correct"]["mean"] == pytest.approx(2 / 3)  # it never refuses
    assert metrics["setting"]["bertscore"]["num_layers"] == 6
    assert metrics["references"]["refusals"] == 1
    assert set(metrics["per_domain"]) == {"ecommerce"} and set(metrics["per_language"]) == {"en"}


def test_model_rows_carry_real_answers_and_costs(small_eval):
    _, out_dir = small_eval
    rows = read_rows(out_dir)
    assert len(rows) == 4 * len(IDS)
    for row in rows:
        assert row["scores"]["refusal_correct"] == (
            row["prediction"] is not None and row["scores"]["refused"] == row["gold_refusal"]
        )
    model = [r for r in rows if r["system"] == "base"]
    refused = next(r for r in model if r["id"] == "ecommerce-006")
    assert refused["refused_by"] == "rules" and refused["scores"]["refusal_correct"] is True
    answered = [r for r in model if r["id"] != "ecommerce-006"]
    assert all(r["tokens"] > 0 and r["latency_s"] > 0 for r in answered)
    # Under the grammar every answer that came back validates against the schema.
    assert all(r["scores"]["schema_valid"] for r in answered if r["prediction"] is not None)
    assert all(0.0 <= r["scores"]["step_f1"] <= 1.0 for r in answered)


def test_rerun_resumes_from_the_cache(small_eval):
    config, out_dir = small_eval
    before = read_rows(out_dir)
    cache = out_dir / "cache" / "base.jsonl"
    lines = cache.read_text().splitlines()
    assert len(lines) == len(IDS)
    # An interrupted run: the last answer is lost mid-line.
    cache.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20], encoding="utf-8")
    evaluate(config)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["setting"]["from_cache"]["base"] == len(IDS) - 1
    assert metrics["setting"]["from_cache"]["base-no-grammar"] == len(IDS)
    after = read_rows(out_dir)
    assert [r["prediction"] for r in after] == [r["prediction"] for r in before]


def test_headline_table_has_a_row_per_system(small_eval):
    _, out_dir = small_eval
    table = headline_table(out_dir / "metrics.json")
    lines = table.splitlines()
    assert lines[0].startswith("| system | validity | step F1 | ROUGE-L")
    rows = [line for line in lines if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == ["base", "base-no-grammar", "template", "gold"]
    assert "| `gold` | 1.000 [1.000, 1.000] | 1.000 [1.000, 1.000]" in table
