"""Repetition detection: known cases, the gold data's own items, and the item layout of a JSON text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from run.repetition import SIMILAR, Layout, copied, looping, normalize, repeated_items, similarity


def _gold_items() -> list[list[str]]:
    answers = []
    for path in sorted(Path("data/raw").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            output = json.loads(line)["output"]
            answers.append([item for value in output.values() if isinstance(value, list) for item in value])
    return answers


@pytest.mark.parametrize(
    ("item", "earlier", "found"),
    [
        ('Select "Update recovery phone".', ['Select "Update recovery phone".'], 0),
        ('select  "update recovery phone"', ["Open Google.", 'Select "Update recovery phone".'], 1),
        ("Tap SAVE!", ["Tap save."], 0),
        ('Tap "Save".', ['Tap "Share".'], None),
        ("Right-click the column C header.", ["Right-click the column D header."], None),
        (
            "Enter the code from the text message we sent to your new phone number",
            ["Enter the code from the text message we sent to your new phone numbers"],
            0,
        ),
        ("Open Settings.", [], None),
        # An enumerator the model wrote into the item does not make it new.
        ("2. PayPal refunds your money.", ["1. PayPal refunds your money."], 0),
        ("- Tap Save.", ["Tap save"], 0),
        ("2. Tap Share.", ["1. Tap Save."], None),
        # A run of variations: within NEAR (85) of two earlier items, though of each below SIMILAR.
        (
            'Tap "Set TOTP 2FA code".',
            ['Tap "Set up TOTP 2FA".', 'Tap "Set TOTP 2FA".', 'Tap "Set the TOTP 2FA code".'],
            1,
        ),
        # One close pair is not a run: the gold has such pairs, never an item close to two.
        ('Tap "Set TOTP 2FA code".', ['Tap "Set up TOTP 2FA".', 'Tap "Set the TOTP 2FA code".'], None),
        ('Adicione a lista "Feito".', ['Adicione a lista "A fazer".', 'Adicione a lista "Fazendo".'], None),
    ],
)
def test_copied_items(item, earlier, found):
    assert copied(item, earlier) == found


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("Tap the the the", None),  # the last word may still grow
        ("Tap the the the ", 8),
        ("Open Settings > Settings > Settings > ", 16),  # punctuation between words does not count
        ("Open VPN settings VPN settings VPN settings and", 18),
        ("Select the Wi-Fi network name Select the Wi-Fi network name and", 30),
        ("Set the start date to 2024-01-01.", None),
        ('Turn on "Turn on automatic replies".', None),
        ("Tap Save.", None),
        ("Tap Profile Profile Details", 12),
        ("Tap Profile Profile", None),  # may still be "Profile Profiles"
        ("Select the card card number ", None),  # four letters: "vous vous" is French
        ('Go to "System" > "System Software" ', None),
        ("স্টেপ" + "ৰ" * 8, 6),  # one letter looping inside a word that never ends
        ("Tap " + "ab" * 8, 6),  # a two-letter unit eight times
        ("Type <<<<<<< to find the conflict", None),  # seven, as in the gold: legal
        ("Enter 000000", None),
    ],
)
def test_word_loops(text, start):
    assert looping(text) == start


def test_no_distinct_gold_pair_counts_as_a_copy():
    """The threshold's justification, checked on every authored answer (see run/repetition.py)."""
    flagged_distinct, identical = 0, 0
    for items in _gold_items():
        for i, item in enumerate(items):
            j = copied(item, items[:i])
            if j is None:
                continue
            if normalize(item) == normalize(items[j]):
                identical += 1
            else:
                flagged_distinct += 1
    assert flagged_distinct == 0
    assert identical == 0  # the gold never repeats an item (see run/repetition.py)


def test_no_gold_item_loops():
    assert [i for items in _gold_items() for i in items if looping(i + " ") is not None] == []


def test_threshold_sits_above_the_closest_distinct_gold_pair():
    assert (
        similarity(
            normalize("Right-click the column C header."), normalize("Right-click the column D header.")
        )
        < SIMILAR
    )


def test_repeated_items_counts_over_every_array():
    output = {
        "schema": "ordered_steps",
        "steps": ["Open Settings.", "Tap Save.", "tap save"],
        "constraints": ["Open settings"],
        "validation": ["The change shows."],
    }
    assert repeated_items(output) == (2, 5)


def test_layout_finds_items_keys_and_cuts_as_the_text_grows():
    text = json.dumps(
        {"schema": "ordered_steps", "steps": ['Tap "A".', "B, [x]"], "constraints": [], "validation": ["C"]}
    )
    layout = Layout()
    closed = []
    for i in range(0, len(text), 3):  # any chunking gives the same layout
        closed += layout.feed(text[i : i + 3].encode())
    data = text.encode()
    assert [(i.key, i.index) for i in closed] == [("steps", 0), ("steps", 1), ("validation", 0)]
    assert [json.loads(b'"' + data[i.start : i.end] + b'"') for i in closed] == ['Tap "A".', "B, [x]", "C"]
    second = closed[1]
    assert data[second.cut - 1 : second.cut] == b'"' and data[second.cut : second.start] == b', "'
    assert data[: closed[0].cut].endswith(b"[")
    assert layout.open_item is None and layout.settled == len(data)


def test_layout_settles_before_the_open_item():
    layout = Layout()
    layout.feed(b'{"schema": "ordered_steps", "steps": ["Open it.", "Tap')
    assert layout.open_item is not None and layout.open_item.index == 1
    assert layout.settled == len(b'{"schema": "ordered_steps", "steps": ["Open it."')
