"""Near-duplicate removal with MinHash LSH (datasketch); every dropped pair is reported."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_WORD_RE = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class DroppedPair:
    """A record dropped as a near-duplicate of one that was kept."""

    kept: str
    dropped: str
    jaccard: float  # MinHash estimate of word-shingle Jaccard similarity
    intent_ratio: float  # rapidfuzz token_sort_ratio of the two intents, 0-100, for reading

    def as_dict(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "dropped": self.dropped,
            "jaccard": round(self.jaccard, 3),
            "intent_ratio": round(self.intent_ratio, 1),
        }


def dedup_text(record: dict[str, Any]) -> str:
    """What two records must share to be near-duplicates: intent, context and answer.

    The context is included on purpose: the same intent on iOS and on Android has different
    steps and is not a duplicate.
    """
    context = record["input"].get("context") or {}
    return " ".join(
        [
            record["input"]["intent"],
            json.dumps(context, sort_keys=True, ensure_ascii=False),
            json.dumps(record["output"], ensure_ascii=False),
        ]
    ).lower()


def shingles(text: str, size: int) -> set[str]:
    """Word n-grams; short texts fall back to their words."""
    words = _WORD_RE.findall(text)
    if len(words) < size:
        return set(words)
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def near_duplicates(
    records: list[dict[str, Any]], threshold: float, num_perm: int, shingle: int, seed: int
) -> tuple[list[dict[str, Any]], list[DroppedPair]]:
    """Keep the first of each group of near-duplicates, in input order.

    `threshold` is the Jaccard similarity of word shingles above which two records count as
    duplicates. LSH proposes candidates; each candidate is confirmed on its MinHash estimate.
    """
    from datasketch import MinHash, MinHashLSH
    from rapidfuzz import fuzz

    # LSH only proposes candidates; datasketch cannot band above ~0.9 with 128 permutations,
    # so it proposes at most 0.9 and every candidate is confirmed against `threshold` below.
    lsh = MinHashLSH(threshold=min(threshold, 0.9), num_perm=num_perm)
    kept: list[dict[str, Any]] = []
    hashes: dict[str, MinHash] = {}
    by_id: dict[str, dict[str, Any]] = {}
    dropped: list[DroppedPair] = []
    for record in records:
        mh = MinHash(num_perm=num_perm, seed=seed)
        for s in sorted(shingles(dedup_text(record), shingle)):
            mh.update(s.encode("utf-8"))
        best: tuple[float, str] | None = None
        for other in sorted(lsh.query(mh)):
            sim = mh.jaccard(hashes[other])
            if sim >= threshold and (best is None or sim > best[0]):
                best = (sim, other)
        if best is not None:
            ratio = fuzz.token_sort_ratio(record["input"]["intent"], by_id[best[1]]["input"]["intent"])
            dropped.append(DroppedPair(best[1], record["id"], best[0], ratio))
            continue
        lsh.insert(record["id"], mh)
        hashes[record["id"]] = mh
        by_id[record["id"]] = record
        kept.append(record)
    return kept, dropped
