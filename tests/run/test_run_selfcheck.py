"""Self-check rules on known good and bad drafts, and on the authored dataset's own answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.redact import redact_record
from run.selfcheck import RULES, check, is_verb, revision_message

ROOT = Path(__file__).resolve().parents[2]


def draft(steps, validation=("Check that the new setting is shown.",), constraints=()):
    return {
        "schema": "ordered_steps",
        "steps": list(steps),
        "constraints": list(constraints),
        "validation": list(validation),
    }


def rules(output, intent="do it", context=None, max_steps=12):
    return sorted({v.rule for v in check(output, intent, context, max_steps=max_steps)})


@pytest.mark.parametrize(
    "steps",
    [
        ['Open the "Settings" app.', 'Tap "Privacy".'],
        ['On the "Log in" screen, tap "Forgot password?".', "Enter your email address."],
        ["Please select your account.", "Right-click the file.", "Re-enter the new password."],
        ['Toca "Ajustes".', "Repítela en el segundo campo.", 'En "Cuenta", toca "Privacidad".'],
        ['Cliquez sur "Paramètres".', "Connectez-vous à votre compte.", "Saisis le code."],
        ['Tippen Sie auf "Einstellungen".', 'Tippe auf "Konto".', "Öffne die App."],
        ['Toque em "Configurações".', "Digite a nova senha."],
        ['Tocca "Impostazioni".', "Inserisci il codice."],
        ['Tap "Save and then exit".'],  # a quoted UI label may say "and then"
    ],
)
def test_good_drafts_pass(steps):
    assert rules(draft(steps)) == []


def test_a_step_that_does_not_start_with_a_verb_fails():
    found = check(draft(["The settings page has a toggle."]), "x", None, max_steps=12)
    assert [(v.rule, v.where) for v in found] == [("imperative", "steps[0]")]
    assert "'The'" in found[0].message


@pytest.mark.parametrize(
    "step",
    ["Tap Save and then tap Done.", "Toca Guardar y luego Salir.", "Klicke auf Speichern und dann auf OK."],
)
def test_chained_actions_fail(step):
    assert rules(draft([step])) == ["one_action"]


def test_too_many_steps_fail_against_n():
    steps = [f"Tap item {i}." for i in range(5)]
    assert rules(draft(steps), max_steps=4) == ["max_steps"]
    assert rules(draft(steps), max_steps=5) == []


@pytest.mark.parametrize("validation", [["OK"], ["1-12, 3"], ["Tap item 0."]])
def test_a_validation_that_checks_nothing_fails(validation):
    assert rules(draft(["Tap item 0."], validation=validation)) == ["validation"]


@pytest.mark.parametrize(
    "step",
    [
        "Email jane.doe@example.com for access.",
        "Call +44 20 7946 0958 to confirm.",
        "Enter card 4111 1111 1111 1111.",
    ],
)
def test_unredacted_pii_fails(step):
    assert rules(draft([step])) == ["pii"]


def test_placeholders_are_not_pii():
    assert rules(draft(["Enter <EMAIL> in the email field."])) == []


def test_an_app_foreign_to_the_context_fails_and_a_named_one_passes():
    output = draft(['Open the Amazon app and tap "Orders".'])
    assert rules(output, "track my order", {"app": "Shopify", "platform": "ios"}) == ["foreign_entity"]
    assert rules(output, "track my Amazon order", {"platform": "ios"}) == []
    assert rules(output, "track my order", {"app": "Amazon Shopping"}) == []


def test_platform_brings_its_vendor_and_excludes_others():
    ios = {"platform": "ios"}
    assert rules(draft(['Open "Settings" on your iPhone.']), "turn on dark mode", ios) == []
    assert rules(draft(["Open the Google Play app on your phone."]), "update an app", ios) == [
        "foreign_entity"
    ]
    assert rules(draft(['Tap "Sign in with Google".']), "sign in", ios) == []  # a quoted label


def test_refusals_are_not_self_checked():
    refusal = {"schema": "refusal", "category": "fraud", "reason": "Not this, sorry.", "alternatives": []}
    assert check(refusal, "x", None, max_steps=1) == []


def test_revision_message_states_every_violation():
    found = check(draft(["The page.", "Tap A and then B."], validation=["OK"]), "x", None, max_steps=1)
    message = revision_message(found)
    for v in found:
        assert f"{v.where}: {v.message} (rule: {v.rule})" in message
    assert {v.rule for v in found} == {"imperative", "one_action", "max_steps", "validation"}
    assert set(RULES) >= {v.rule for v in found}


def test_is_verb_heuristics():
    assert is_verb("Sélectionnez") and is_verb("Vérifiez") and is_verb("Identifícate")
    assert is_verb("Tippen", "Sie")
    assert not is_verb("Settings") and not is_verb("The") and not is_verb("")


def test_the_dataset_answers_pass_the_rules():
    """The rules must agree with the authored answers, or revisions would make answers worse."""
    total, failing = 0, []
    for path in sorted((ROOT / "data" / "raw").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = redact_record(json.loads(line))  # serving sees redacted text too
            if record["output"]["schema"] == "refusal":
                continue
            total += 1
            inp = record["input"]
            if check(record["output"], inp["intent"], inp.get("context"), max_steps=12):
                failing.append(record.get("id"))
    assert total > 400
    assert len(failing) / total <= 0.03, failing


def test_steps_in_scripts_without_a_verb_list_are_not_judged_imperative():
    steps = [
        'Нажмите "Enable two-factor authentication".',
        "点击顶部你的名字。",
        "Ne cliquez pas sur le lien.",
    ]
    procedure = {
        "schema": "ordered_steps",
        "steps": steps,
        "constraints": [],
        "validation": ["Check it works."],
    }
    assert [v for v in check(procedure, "", None, max_steps=12) if v.rule == "imperative"] == []
    procedure["steps"] = ['The "Settings" page opens.']  # Latin script: still judged
    assert [v.rule for v in check(procedure, "", None, max_steps=12)] == ["imperative"]
