"""Lenient loading: off-style references are scored and counted; unscorable lines stop the run."""

from __future__ import annotations

import pytest
from records import procedure

from eval.harness import score
from eval.references import EvalDataError, load_examples
from eval.systems import Prediction, template_output


def descriptive_reference() -> dict:
    """A gold answer as other people write them: 20 long descriptive steps and no validation."""
    steps = [
        f"In this part of the process, which is step number {i}, the user should look carefully at the "
        f"screen and then, once everything has loaded, proceed to tap the option labelled Item {i} so that "
        "the application can continue with the rest of the configuration, which may take a while to finish."
        for i in range(1, 21)
    ]
    return {"input": {"intent": "set everything up"}, "output": {"steps": steps}}


def test_descriptive_reference_without_validation_is_loaded_scored_and_counted(write_jsonl):
    path = write_jsonl("gold.jsonl", [descriptive_reference(), procedure("reset password", ['Tap "Reset".'])])
    examples, stats = load_examples(path)
    assert len(examples) == 2
    off_style = examples[0]
    assert len(off_style.output["steps"]) == 20
    assert set(off_style.problems) >= {"more than 12 steps", "no validation", "steps over 200 characters"}
    assert "not imperative" in off_style.problems
    assert stats["references_breaking_style"] == 1
    assert stats["reference_style_problems"]["no validation"] == 1
    assert (off_style.id, off_style.domain, off_style.language) == ("line-1", "unknown", "und")
    # Scored like any other reference: the gold answer itself gets full marks.
    scores = score(off_style, Prediction(off_style.output), max_steps=12)
    assert scores["step_f1"] == 1.0 and scores["rouge_l"] == pytest.approx(1.0)
    assert scores["valid"] is False  # 20 steps: the prediction, not the reference, is held to the schema
    template = score(off_style, Prediction(template_output(off_style.intent, {})), max_steps=12)
    assert template["valid"] is True and template["step_f1"] < 0.2


def test_unscorable_lines_are_located(write_jsonl):
    rows = [
        procedure("ok", ['Tap "Save".']),
        "{not json",
        {"input": {"intent": "  "}, "output": {"steps": ["Tap it."]}},
        {"input": {"intent": "no steps"}, "output": {"constraints": []}},
    ]
    path = write_jsonl("bad.jsonl", rows)
    with pytest.raises(EvalDataError) as err:
        load_examples(path)
    message = str(err.value)
    assert f"{path}:2: <line>: not valid JSON" in message
    assert f"{path}:3: input.intent: missing or empty" in message
    assert f"{path}:4: output.steps: missing" in message
    assert message.endswith(f"3 unscorable line(s) in {path}")


def test_refusal_reference_needs_no_steps_and_bad_context_is_dropped(write_jsonl):
    refusal = {
        "input": {
            "intent": "read my ex's messages",
            "context": {"app": "WhatsApp", "mood": "sad", "locale": "EN_us"},
        },
        "output": {
            "schema": "refusal",
            "category": "stalking",
            "reason": "I can't help with that.",
            "alternatives": [],
        },
    }
    path = write_jsonl("refusal.jsonl", [refusal])
    examples, stats = load_examples(path)
    assert examples[0].refusal
    assert examples[0].context == {"app": "WhatsApp"}
    assert stats["context_fields_dropped"] == {"locale": 1, "mood": 1}
    assert stats["refusals"] == 1


def test_limit_keeps_an_evenly_spaced_subset_and_ids_stay_unique(write_jsonl):
    rows = [{**procedure(f"intent {i}", ['Tap "Save".']), "id": f"x-{i:02d}"} for i in range(10)]
    rows.append(rows[0])
    path = write_jsonl("ten.jsonl", rows)
    examples, stats = load_examples(path, limit=5)
    assert [e.id for e in examples] == ["x-00", "x-02", "x-04", "x-06", "x-08"]
    assert (stats["read"], stats["evaluated"]) == (11, 5)
    everything, stats = load_examples(path)
    assert everything[-1].id == "x-00~2" and stats["duplicate_ids_renamed"] == 1


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(EvalDataError, match="just data"):
        load_examples(tmp_path / "nope.jsonl")


# run/selfcheck reads a leading "Bitte" as German "please", but here it is the imperative of
# "bitten" (to ask): "Bitte deine Schwester, ...". Reported to the run/ owner.
KNOWN_FALSE_POSITIVES = {"gaming-005": ["not imperative"]}


def test_every_authored_record_meets_the_style_guide(root):
    """The gold upper bound holds: the authored data breaks none of the rules that validity scores."""
    for path in sorted((root / "data/raw").glob("*.jsonl")):
        examples, stats = load_examples(path)
        assert stats["evaluated"] == sum(1 for line in path.open() if line.strip())
        broken = {e.id: e.problems for e in examples if e.problems}
        assert broken == {k: v for k, v in KNOWN_FALSE_POSITIVES.items() if k in broken}, broken
