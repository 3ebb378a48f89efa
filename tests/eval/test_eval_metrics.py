"""Known answers of the per-example metrics: step F1 and its ordered form, text overlap, hallucination."""

from __future__ import annotations

import pytest

from eval import metrics
from eval.entities import hallucination_rate, hallucinations
from eval.lemma import lemma, verb_object

GOLD = [
    'Open the "Settings" app.',
    'Tap "Wi-Fi".',
    'Turn on "Wi-Fi".',
    "Select your home network.",
    "Enter the network password.",
    'Tap "Join".',
]


def procedure(steps: list[str], validation: list[str] | None = None) -> dict:
    checks = ['The "Wi-Fi" icon shows in the status bar.'] if validation is None else validation
    return {"schema": "ordered_steps", "steps": steps, "constraints": [], "validation": checks}


def test_identical_steps_score_one():
    scores = metrics.step_match(GOLD, GOLD)
    assert scores["step_f1"] == 1.0
    assert scores["step_order_f1"] == 1.0
    assert scores["matches"] == [[i, i] for i in range(len(GOLD))]


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("Tap Settings", "Select Settings"),
        ('Click the "Settings" button.', 'Press "Settings".'),
        ("Launch the Settings app", 'Go to "Settings".'),
        ("Type the code from the email.", "Fill in the code from the email."),
        ('Switch on "Bluetooth".', 'Enable "Bluetooth".'),
    ],
)
def test_ui_verb_synonyms_match(pred, gold):
    assert verb_object(pred) == verb_object(gold)
    assert metrics.step_match([pred], [gold])["step_f1"] == 1.0


def test_disjoint_steps_score_zero():
    pred = ["Restart the router.", 'Call your "Internet provider".', "Wait two minutes."]
    scores = metrics.step_match(pred, GOLD)
    assert scores["step_f1"] == 0.0
    assert scores["matches"] == []
    assert metrics.step_match([], GOLD)["step_f1"] == 0.0


def test_same_verb_other_object_is_no_match():
    assert metrics.step_similarity('Tap "Settings".', 'Tap "Done".') == 0.0
    assert metrics.step_match(['Tap "Done".'], ['Tap "Settings".'])["step_f1"] == 0.0


def test_reordering_keeps_step_f1_and_lowers_the_order_aware_f1():
    reordered = list(reversed(GOLD))
    scores = metrics.step_match(reordered, GOLD)
    assert scores["step_f1"] == 1.0
    assert scores["step_order_f1"] == pytest.approx(1 / len(GOLD))
    swapped = [GOLD[1], GOLD[0], *GOLD[2:]]
    assert metrics.step_match(swapped, GOLD)["step_order_f1"] == pytest.approx(5 / 6)


def test_partial_answer_gives_precision_and_recall():
    scores = metrics.step_match(GOLD[:3] + ["Wait a minute."], GOLD)
    assert scores["step_precision"] == pytest.approx(3 / 4)
    assert scores["step_recall"] == pytest.approx(3 / 6)
    assert scores["step_f1"] == pytest.approx(2 * 0.75 * 0.5 / 1.25)


def test_alignment_is_one_to_one():
    # Two identical predicted steps can match only one gold step between them.
    scores = metrics.step_match(['Tap "Join".', 'Tap "Join".'], ['Tap "Join".'])
    assert scores["matches"] == [[0, 0]]
    assert scores["step_precision"] == 0.5


def test_lemmatiser_rules():
    assert [lemma(w) for w in ("settings", "typing", "tapping", "entries", "chose", "status")] == [
        "setting",
        "type",
        "tap",
        "entry",
        "choose",
        "status",
    ]
    verb, objects = verb_object('On the "Log in" screen, tap "Forgot password?".')
    assert verb == "select"
    assert objects == {"forgot", "password"}


def test_text_overlap_known_answers():
    text = "\n".join(GOLD)
    assert metrics.rouge_l(text, text) == pytest.approx(1.0)
    assert metrics.bleu(text, text) == pytest.approx(1.0)
    assert metrics.rouge_l("Reboot router quickly", text) == 0.0
    assert metrics.bleu("", text) == 0.0
    # ROUGE-L is order-aware too: reversing the lines lowers it.
    assert metrics.rouge_l("\n".join(reversed(GOLD)), text) < 0.6
    # Non-ASCII words count whole: the default rouge-score tokenizer would split "Configurações".
    assert metrics.rouge_l("Abra Configurações", "Toque em Configurações") == pytest.approx(0.4)


def test_structure_validity():
    assert metrics.structure(procedure(GOLD), None)["valid"] is True
    numbered = metrics.structure(procedure(["1. " + s for s in GOLD]), None)
    assert numbered["schema_valid"] and not numbered["valid"]
    assert numbered["style_problems"] == ["numbered"]
    not_verbs = metrics.structure(procedure(["The settings app.", 'Maybe "Wi-Fi".']), None)
    assert "imperative" in not_verbs["style_problems"]
    no_check = metrics.structure(procedure(GOLD, validation=["Done"]), None)
    assert no_check["style_problems"] == ["validation"]
    assert metrics.structure(procedure(GOLD * 3), None) == {
        "json_valid": True,
        "schema_valid": False,
        "style_valid": False,
        "valid": False,
        "style_problems": ["schema"],
    }
    too_many = metrics.structure(procedure(GOLD[:5]), None, max_steps=4)
    assert too_many["style_problems"] == ["max_steps"]


def test_structure_of_missing_output_tells_parse_from_schema_failure():
    unparsed = metrics.structure(None, "not valid JSON (Expecting value at character 0)")
    assert unparsed["json_valid"] is False and unparsed["valid"] is False
    parsed = metrics.structure(None, "not a valid output: output.steps: should be non-empty")
    assert parsed["json_valid"] is True and parsed["schema_valid"] is False


def test_refusal_is_valid_without_style_rules():
    refusal = {
        "schema": "refusal",
        "category": "fraud",
        "reason": "I can't help with fake reviews.",
        "alternatives": [],
    }
    assert metrics.structure(refusal, None)["valid"] is True
    assert metrics.answer_text(refusal) == "I can't help with fake reviews."


def test_fabricated_app_is_a_hallucination():
    context = {"app": "Shopify", "platform": "ios"}
    gold = 'Open the "Shopify" app.\nTap "Forgot password?".'
    steps = ["Open the QuickPayz app.", 'Tap "Forgot password?".', 'Tap "Settings".']
    found = hallucinations(steps, "reset my password", context, gold)
    assert found == [{"step": 0, "entities": ["QuickPayz"]}]
    assert hallucination_rate(steps, "reset my password", context, gold) == pytest.approx(1 / 3)


def test_brand_and_screen_hallucinations_and_allowed_names():
    context = {"app": "Shopify", "platform": "ios", "current_screen": "Log in"}
    gold = 'Tap "Forgot password?".'
    intent = "reset my password"
    assert hallucination_rate(["Open Netflix."], intent, context, gold) == 1.0  # a brand nobody named
    assert hallucination_rate(['Go to the "Merchant Vault" screen.'], intent, context, gold) == 1.0
    allowed = [
        'On the "Log in" screen, tap "Forgot password?".',  # context screen, gold label
        "Open the Shopify app.",  # context app
        'Open "Settings" on your iPhone.',  # generic label; iPhone comes with platform ios
    ]
    assert hallucination_rate(allowed, intent, context, gold) == 0.0
    assert hallucination_rate([], intent, context, gold) is None


def test_german_nouns_are_not_names():
    steps = ['Öffne die Einstellungen und tippe auf "Datenschutz".']
    context = {"platform": "android"}
    assert hallucination_rate(steps, "Datenschutz ändern", context, "", language="de") == 0.0


def test_repetition_per_answer_and_per_item():
    looping = {
        "schema": "ordered_steps",
        "steps": ['Select "Update recovery phone".'] * 3 + ["Enter the new number."],
        "constraints": ['select "update recovery phone"'],
        "validation": ["The new number shows."],
    }
    assert metrics.repetition(looping) == {"repeated": True, "repeated_items": 3 / 6}
    distinct = {**looping, "steps": ["Open Settings.", "Tap Save."], "constraints": []}
    assert metrics.repetition(distinct) == {"repeated": False, "repeated_items": 0.0}
    refusal = {"schema": "refusal", "category": "fraud", "reason": "Not this.", "alternatives": []}
    assert metrics.repetition(refusal) == {"repeated": False, "repeated_items": 0.0}
