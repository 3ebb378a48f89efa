"""The eval CLI's config handling, system specs, the template baseline and the statistics."""

from __future__ import annotations

import pytest

from data.schema import validate_output
from data.settings import ConfigError
from eval import metrics, stats
from eval.__main__ import parse_args, plan
from eval.config import EvalConfig, HumanScoreConfig, HumanSheetConfig
from eval.references import load_examples
from eval.systems import SpecError, build, resolve_gguf, system_name, template_output


def test_flags_override_defaults_and_unknown_keys_list_the_valid_ones():
    config = parse_args(
        ["--model", "base", "--systems", "template", "--ablate", "grammar,selfcheck", "--limit", "3"]
    )
    assert (config.model, config.systems, config.ablate, config.limit) == (
        "base",
        ["template"],
        ["grammar", "selfcheck"],
        3,
    )
    with pytest.raises(ConfigError, match="Valid keys: model, systems"):
        parse_args(["--modle", "base"])
    with pytest.raises(ConfigError, match="'temperature' is not one of grammar, selfcheck"):
        parse_args(["--ablate", "temperature"])
    with pytest.raises(ConfigError, match="unknown command 'score'"):
        parse_args(["score"])


def test_subcommands_parse_their_own_configs():
    sheet = parse_args(["human-sheet", "--predictions", "p.jsonl", "--systems", "a,b"])
    assert isinstance(sheet, HumanSheetConfig) and sheet.systems == ["a", "b"]
    scored = parse_args(["human-score", "r1.csv", "r2.csv"])
    assert isinstance(scored, HumanScoreConfig) and scored.sheets == ["r1.csv", "r2.csv"]
    with pytest.raises(ConfigError, match="two different systems"):
        parse_args(["human-sheet", "--predictions", "p.jsonl", "--systems", "a"])


def test_plan_puts_the_system_under_test_first_with_its_ablations():
    config = EvalConfig(
        model="outputs/my-run", systems=["base", "template", "outputs/my-run"], ablate=["grammar"]
    )
    assert plan(config) == [
        ("my-run", "outputs/my-run", ()),
        ("my-run-no-grammar", "outputs/my-run", ("grammar",)),
        ("base", "base", ()),
        ("template", "template", ()),
    ]
    assert system_name("models/x.gguf") == "x"


def test_model_specs_resolve_or_name_the_fix(tmp_path):
    assert resolve_gguf("base").name.endswith(".gguf")
    with pytest.raises(SpecError, match="no such file or run folder"):
        resolve_gguf(str(tmp_path / "missing"))
    run = tmp_path / "my-run"
    run.mkdir()
    with pytest.raises(SpecError, match="just export"):
        resolve_gguf(str(run))
    (run / "my-run-q4_k_m.gguf").write_bytes(b"GGUF")
    assert resolve_gguf(str(run)) == run / "my-run-q4_k_m.gguf"
    model = build(str(run), EvalConfig().engine_settings(), ablate=("selfcheck",))
    assert (model.grammar, model.selfcheck) == (True, False)
    assert "selfcheck=False" in model.fingerprint


def test_template_baseline_is_valid_for_every_authored_context(root):
    for path in sorted((root / "data/raw").glob("*.jsonl")):
        examples, _ = load_examples(path)
        for example in examples:
            output = template_output(example.intent, example.context)
            assert validate_output(output) == [], example.id
            assert metrics.structure(output, None)["valid"], example.id


def test_bootstrap_ci_brackets_the_mean_and_is_seeded():
    xs = [0.0, 1.0] * 20
    first = stats.bootstrap_ci(xs, 1000, seed=1)
    assert first["mean"] == 0.5 and first["lo"] < 0.5 < first["hi"] and first["n"] == 40
    assert stats.bootstrap_ci(xs, 1000, seed=1) == first
    assert stats.bootstrap_ci([0.7] * 5, 1000, seed=1) == {"mean": 0.7, "lo": 0.7, "hi": 0.7, "n": 5}
    assert stats.bootstrap_ci([], 1000, seed=1)["mean"] is None


def test_paired_difference_and_grouping_skip_undefined_values():
    def row(system, id_, f1, domain="a"):
        return {"system": system, "id": id_, "domain": domain, "scores": {"step_f1": f1}}

    rows = [row("x", "1", 1.0), row("x", "2", 0.5, "b"), row("y", "1", 0.0), row("y", "2", None, "b")]
    diff = stats.paired_diff(rows, "x", "y", "step_f1", 1000, seed=1)
    assert (diff["mean"], diff["n"]) == (1.0, 1)
    table = stats.grouped(rows, "domain")
    assert table["a"]["x"]["step_f1"] == 1.0 and table["b"]["y"]["step_f1"] is None


def test_a_cached_answer_is_keyed_by_the_code_that_answered(tmp_path):
    """A decoder change must not reuse the answers the decoder before it wrote."""
    import shutil
    from pathlib import Path

    from eval.systems import _engine_code

    root = Path(__file__).resolve().parents[2]
    for package in ("data", "run", "export"):
        shutil.copytree(
            root / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.json*")
        )
    before = _engine_code(tmp_path)
    assert before == _engine_code.__wrapped__(tmp_path)  # the same tree, the same hash
    decoder = tmp_path / "run" / "decoder.py"
    decoder.write_text(decoder.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    assert _engine_code.__wrapped__(tmp_path) != before
    model = build("base", EvalConfig().engine_settings(), ablate=())
    assert model.fingerprint.endswith(f":code={_engine_code()}")
