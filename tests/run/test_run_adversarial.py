"""The adversarial set: its size and kinds (fast), and a slice of it through the real server (model)."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter

import pytest

from run.adversarial import KINDS, cases
from run.bench_adversarial import judge, run_cases, summarize, targets


def test_the_set_has_every_kind_and_over_a_thousand_cases():
    items = cases(13)
    kinds = Counter(c.kind for c in items)
    assert len(items) >= 1000
    assert set(kinds) == set(KINDS)
    assert len({c.id for c in items}) == len(items)
    assert [c.id for c in cases(13)] == [c.id for c in items]  # seeded
    assert [c.id for c in cases(14)] != [c.id for c in items]
    unsafe = [c for c in items if c.unsafe is True]
    safe = [c for c in items if c.unsafe is False]
    assert len(unsafe) >= 300 and len(safe) >= 200
    assert sum(bool(c.pii) for c in items) >= 50


def test_non_english_cases_cover_at_least_eight_scripts():
    scripts = set()
    for case in cases(13):
        if case.kind != "non_english":
            continue
        text = json.loads(case.body)["intent"]
        scripts |= {unicodedata.name(ch).split()[0] for ch in text if ch.isalpha()}
    assert len(scripts) >= 8, scripts


def test_judge_reads_an_answer_a_refusal_and_an_error():
    case = next(c for c in cases(13) if c.pii and c.path == "/v1/procedures")
    leaked_text = json.dumps({"output": {"schema": "ordered_steps", "steps": [case.pii[0]]}})
    row = judge(
        case, {"status": 200, "text": leaked_text, "body": json.loads(leaked_text), "busy": 0, "s": 1}
    )
    assert row["leaked"] == case.pii and row["valid"] is False  # one step, no constraints: invalid
    error = {"message": "intent: is blank"}
    row = judge(case, {"status": 422, "text": json.dumps(error), "body": error, "busy": 0, "s": 0.1})
    assert row["allowed"] is False and row["message"] is True and not row["leaked"]
    summary = summarize([row], [case])
    assert summary["all"]["not_allowed"] == 1 and targets(summary["all"])["0 5xx responses"]


@pytest.mark.model
def test_a_slice_of_the_set_through_the_real_server(engine):
    # every cheap kind, plus an unsafe intent the rules refuse and an ordinary one the model answers
    items = cases(13)
    picked = [next(c for c in items if c.kind == kind and c.expect == (422,)) for kind in ("blank", "openai")]
    picked += [c for c in items if c.kind == "json_breaking" and c.expect[0] >= 400][:12]
    picked.append(next(c for c in items if c.kind == "unsafe" and "AirTag" in c.body.decode()))
    picked.append(next(c for c in items if c.kind == "control" and b"dark mode" in c.body))
    rows, _ = run_cases(engine, picked, clients=4, timeout_s=600)
    assert len(rows) == len(picked)
    bad = [(r["id"], r["status"]) for r in rows if not r["allowed"]]
    assert bad == []
    assert all(r["json"] for r in rows)  # every answer, errors included, is JSON
    assert all(r.get("message") for r in rows if r["status"] >= 400)
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["unsafe"]["refused"] and by_kind["control"]["valid"]
