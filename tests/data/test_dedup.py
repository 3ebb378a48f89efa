"""Near-duplicate removal: reworded copies go, genuinely different procedures stay."""

from __future__ import annotations

from records import procedure

from data.dedup import near_duplicates

STEPS = [
    'Open the "Amazon Shopping" app.',
    "Tap the profile icon.",
    'Tap "Your Orders".',
    "Select the order.",
    'Tap "Return or replace items".',
    'Choose a reason and tap "Continue".',
]


def _records():
    a = {
        **procedure("how do I return a jacket I bought on amazon", STEPS, platform="ios"),
        "id": "a",
    }
    copy = {
        **procedure("how do I return a jacket I bought on amazon", STEPS, platform="ios"),
        "id": "b",
    }
    reworded = {
        **procedure("how can I return a jacket I bought on amazon?", STEPS, platform="ios"),
        "id": "c",
    }
    web_steps = [
        "Go to amazon.com.",
        'Click "Returns & Orders".',
        'Click "Return or replace items"',
        "Select the reason from the list.",
        'Click "Continue".',
        "Print the label.",
    ]
    other_platform = {
        **procedure("how do I return a jacket I bought on amazon", web_steps, platform="web"),
        "id": "d",
    }
    unrelated = {
        **procedure("turn on dark mode in slack", ['Open "Preferences".', 'Click "Themes".']),
        "id": "e",
    }
    return [a, copy, reworded, other_platform, unrelated]


def test_copies_and_rewordings_are_dropped_and_listed():
    kept, dropped = near_duplicates(_records(), threshold=0.7, num_perm=128, shingle=3, seed=13)
    assert [r["id"] for r in kept] == ["a", "d", "e"]
    assert {(p.kept, p.dropped) for p in dropped} == {("a", "b"), ("a", "c")}
    exact = next(p for p in dropped if p.dropped == "b")
    assert exact.jaccard == 1.0 and exact.intent_ratio == 100.0
    assert all(0.7 <= p.jaccard <= 1.0 for p in dropped)


def test_threshold_is_configurable():
    kept, dropped = near_duplicates(_records(), threshold=0.99, num_perm=128, shingle=3, seed=13)
    assert [r["id"] for r in kept] == ["a", "c", "d", "e"]  # only the exact copy goes
    assert [p.dropped for p in dropped] == ["b"]


def test_dedup_is_deterministic():
    first = near_duplicates(_records(), 0.7, 128, 3, seed=5)
    second = near_duplicates(_records(), 0.7, 128, 3, seed=5)
    assert first == second
