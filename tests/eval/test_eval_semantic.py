"""BERTScore and constraint satisfaction on the offline MiniLM: known answers, threshold calibration."""

from __future__ import annotations

import pytest

from eval import semantic

pytestmark = pytest.mark.model

ANSWER = 'Open the "Settings" app.\nTap "Wi-Fi".\nEnter the network password.'


def test_bertscore_is_one_for_identical_text_and_ranks_paraphrase_over_unrelated():
    paraphrase = 'Launch "Settings".\nSelect "Wi-Fi".\nType the password of the network.'
    unrelated = "Preheat the oven to 200 degrees.\nBake the bread for forty minutes."
    identical, close, far, empty = semantic.bertscore_f1([ANSWER, paraphrase, unrelated, ""], [ANSWER] * 4)
    assert identical == pytest.approx(1.0, abs=1e-5)
    assert far < close < identical
    assert empty == 0.0


def test_setting_records_model_and_layer():
    setting = semantic.setting()
    assert setting["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert setting["num_layers"] == semantic.BERTSCORE_LAYER == 6
    assert setting["path"].endswith("model")


# Paraphrase pairs score 0.69-0.86 on MiniLM; constraints about other things stay under 0.5.
PARAPHRASES = [
    ("You need the admin role to change billing.", "Only admins can change the billing settings."),
    ("Back up your phone before resetting it.", "Make a backup first: the reset erases everything."),
    ("The code expires after 10 minutes.", "Codes are valid for ten minutes only."),
]
UNRELATED = [
    (
        "Make sure you are signed in with the account you want to change.",
        "The code expires after 10 minutes.",
    ),
    ("Refunds take 5-10 business days to arrive.", "You need the admin role to change billing."),
]


def test_constraint_threshold_separates_paraphrases_from_other_constraints():
    vectors = semantic.embed([t for pair in PARAPHRASES + UNRELATED for t in pair])
    sims = [float(vectors[i] @ vectors[i + 1]) for i in range(0, len(vectors), 2)]
    assert all(s >= semantic.CONSTRAINT_THRESHOLD for s in sims[: len(PARAPHRASES)]), sims
    assert all(s < semantic.CONSTRAINT_THRESHOLD for s in sims[len(PARAPHRASES) :]), sims


def test_constraint_satisfaction_counts_the_stated_share():
    gold = [PARAPHRASES[0][0], PARAPHRASES[1][0]]
    states_one = ['Tap "Billing".', PARAPHRASES[0][1]]
    results = semantic.constraint_satisfaction(
        [(gold, states_one), (gold, gold), (gold, ['Tap "Billing".']), ([], ["anything"]), (gold, [])]
    )
    assert results == [0.5, 1.0, 0.0, None, 0.0]
