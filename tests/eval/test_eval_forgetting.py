"""The forgetting probe's rule and its shipped questions."""

from __future__ import annotations

from eval.forgetting import passes, read_probes


def test_the_rule_wants_the_word_and_no_procedure():
    assert passes("The capital of France is Paris.", ["paris"])
    assert not passes("I am not sure.", ["paris"])
    assert not passes('{"schema": "ordered_steps", "steps": ["Open Paris"]}', ["paris"])


def test_every_probe_has_an_id_a_question_and_expected_words():
    probes = read_probes()
    assert len(probes) >= 10 and len({p["id"] for p in probes}) == len(probes)
    assert all(
        p["question"].strip() and p["expect"] and all(w == w.casefold() for w in p["expect"]) for p in probes
    )
