"""Train/val/test split stratified by primary domain and language, plus inverse-frequency domain weights."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from typing import Any

UNKNOWN_DOMAIN = "general"


def primary_domain(record: dict[str, Any]) -> str:
    """The first domain tag; records without meta fall into 'general'."""
    domains = (record.get("meta") or {}).get("domains") or [UNKNOWN_DOMAIN]
    return domains[0]


def language(record: dict[str, Any]) -> str:
    """The record's language; 'en' when meta does not say."""
    return (record.get("meta") or {}).get("language", "en")


def stratum(record: dict[str, Any]) -> tuple[str, str]:
    """The split's stratification key."""
    return primary_domain(record), language(record)


def _allocate(n: int, fractions: dict[str, float], carry: dict[str, float]) -> dict[str, int]:
    """Share n items between splits, carrying rounding remainders across strata.

    Rounding each stratum on its own would give a 2-record (travel, it) stratum no test
    example and leave the whole test split short; carrying the remainder keeps the global
    proportions exact while every stratum still gets its share where it has enough records.
    """
    counts = {}
    for name, frac in fractions.items():
        want = n * frac + carry[name]
        counts[name] = int(want)
        carry[name] = want - counts[name]
    overflow = sum(counts.values()) - n
    for name in fractions:
        if overflow <= 0:
            break
        take = min(overflow, counts[name])
        counts[name] -= take
        carry[name] += take
        overflow -= take
    return counts


def _rank(record_id: str, seed: int) -> str:
    """A record's seeded, stable position key."""
    return hashlib.sha256(f"{seed}:{record_id}".encode()).hexdigest()


def stratified_split(
    records: list[dict[str, Any]], val_frac: float, test_frac: float, seed: int
) -> dict[str, list[dict[str, Any]]]:
    """Deterministic split: the same records and seed always give the same three lists."""
    if not 0 <= val_frac < 1 or not 0 <= test_frac < 1 or val_frac + test_frac >= 1:
        raise ValueError(f"val_frac={val_frac} and test_frac={test_frac} must be in [0, 1) and sum below 1")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[stratum(record)].append(record)
    carry = {"test": 0.0, "val": 0.0}
    out: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for key in sorted(groups):
        # Each record's place comes from a hash of the seed and its id, not from one random
        # stream over all strata: a new record then moves at most the one or two records at
        # the boundaries it lands on, where a shared shuffle reshuffled every later stratum.
        group = sorted(groups[key], key=lambda r: _rank(r["id"], seed))
        held = _allocate(len(group), {"test": test_frac, "val": val_frac}, carry)
        out["test"] += group[: held["test"]]
        out["val"] += group[held["test"] : held["test"] + held["val"]]
        out["train"] += group[held["test"] + held["val"] :]
    for name in out:
        out[name].sort(key=lambda r: r["id"])
    return out


def domain_weights(records: list[dict[str, Any]]) -> dict[str, float]:
    """Inverse-frequency weight per primary domain, scaled so the mean weight per example is 1.

    With these as per-example loss weights, every domain contributes the same total loss.
    """
    counts = Counter(primary_domain(r) for r in records)
    if not counts:
        return {}
    raw = {d: 1.0 / c for d, c in counts.items()}
    scale = len(records) / sum(raw[d] * c for d, c in counts.items())
    return {d: round(raw[d] * scale, 6) for d in sorted(raw)}
