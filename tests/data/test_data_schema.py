"""The data contract: shipped records validate, bad ones fail with file:line: field: message."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
from records import procedure

from data.__main__ import read_records
from data.schema import is_refusal, load_schema, validate_output, validate_record

REFUSAL = {
    "schema": "refusal",
    "category": "account_takeover",
    "reason": "I can't help you get into someone else's account.",
    "alternatives": ["Use the official recovery flow for your own account."],
}


def test_schema_is_valid_draft_2020_12():
    schema = load_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_shipped_record_validates(root):
    files = sorted((root / "data" / "raw").glob("*.jsonl")) + [root / "data" / "sample_train.jsonl"]
    assert len(files) >= 13
    count = 0
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            problems = validate_record(json.loads(line))
            assert not problems, f"{path.name}:{lineno}: {problems}"
            count += 1
    assert count >= 520


def test_refusal_and_procedure_are_told_apart():
    proc = procedure("x", ['Tap "Settings".'])["output"]
    assert validate_output(REFUSAL) == [] and validate_output(proc) == []
    assert is_refusal(REFUSAL) and not is_refusal(proc)
    # A refusal cannot smuggle in steps, and a procedure cannot claim to be a refusal.
    assert validate_output({**REFUSAL, "steps": ["Tap it."]})
    assert validate_output({**proc, "schema": "refusal"})


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda r: r["output"].update(steps=[]), "output.steps", "non-empty"),
        (
            lambda r: r["output"].update(steps=[f"Tap {i}." for i in range(13)]),
            "output.steps",
            "has 13 items; at most 12",
        ),
        (lambda r: r["output"].update(validation=[]), "output.validation", "non-empty"),
        (
            lambda r: r["output"].pop("constraints"),
            "output",
            "'constraints' is a required property",
        ),
        (lambda r: r["input"].update(intent=""), "input.intent", "non-empty"),
        (
            lambda r: r["input"].update(context={"platfrom": "ios"}),
            "input.context",
            "'platfrom' was unexpected",
        ),
        (lambda r: r["meta"].update(domains="ecommerce"), "meta.domains", "is not of type 'array'"),
        (
            lambda r: r["output"].update(steps=["x" * 201]),
            "output.steps[0]",
            "201 characters long; the limit is 200",
        ),
    ],
)
def test_malformed_records_name_the_field(mutate, field, words):
    record = procedure("buy a thing", ['Tap "Buy".'])
    mutate(record)
    problems = validate_record(record)
    assert any(path == field and words in msg for path, msg in problems), problems


def test_bad_lines_are_reported_with_file_and_line(write_jsonl):
    good = procedure("track my parcel", ['Open "Orders".'])
    bad = procedure("track my parcel again", [])
    path = write_jsonl("mixed.jsonl", [good, "{not json", bad, {**REFUSAL}])
    records, errors, read = read_records([path])
    assert read == 4 and len(records) == 1
    assert any(e.startswith(f"{path}:2: <line>: not valid JSON") for e in errors), errors
    assert any(e.startswith(f"{path}:3: output.steps:") for e in errors), errors
    assert any(e.startswith(f"{path}:4: <record>: 'input' is a required property") for e in errors), errors


def _run_data(*args, cwd):
    return subprocess.run([sys.executable, "-m", "data", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_fails_on_a_broken_line_and_names_it(write_jsonl, tmp_path, root):
    path = write_jsonl("broken.jsonl", [procedure("a", ['Tap "A".']), procedure("b", [])])
    result = _run_data(str(path), "--tokenizer", "none", "--out-dir", str(tmp_path / "out"), cwd=root)
    assert result.returncode == 1
    assert f"{path}:2: output.steps:" in result.stderr
    assert "1 invalid record(s)" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_skip_invalid_reports_the_count(write_jsonl, tmp_path, root):
    path = write_jsonl("broken.jsonl", [procedure("a", ['Tap "A".']), procedure("b", [])])
    out = tmp_path / "out"
    result = _run_data(str(path), "--tokenizer", "none", "--out-dir", str(out), "--skip-invalid", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "skipped 1 invalid record(s) of 2 read" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["invalid"] == 1 and report["read"] == 2


def test_cli_unknown_key_lists_valid_keys(root):
    result = _run_data("--dedup-thresold", "0.5", cwd=root)
    assert result.returncode == 2
    assert "unknown key 'dedup_thresold'" in result.stderr and "dedup_threshold" in result.stderr
