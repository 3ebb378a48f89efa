"""Split stratification and determinism, domain weights, and byte-identical reruns."""

from __future__ import annotations

from collections import Counter

import pytest

from data.__main__ import DataConfig, main
from data.split import domain_weights, stratified_split, stratum


def _records(n_per: dict[tuple[str, str], int]):
    out = []
    for (domain, lang), n in n_per.items():
        for i in range(n):
            out.append(
                {
                    "id": f"{domain}-{lang}-{i:03d}",
                    "input": {"intent": f"{domain} {i}"},
                    "output": {},
                    "meta": {"domains": [domain], "language": lang},
                }
            )
    return out


SIZES = {
    ("banking", "en"): 40,
    ("banking", "es"): 10,
    ("travel", "en"): 30,
    ("travel", "fr"): 7,
    ("gaming", "en"): 20,
    ("gaming", "de"): 3,
}


def test_split_is_stratified_by_domain_and_language():
    records = _records(SIZES)
    splits = stratified_split(records, val_frac=0.1, test_frac=0.1, seed=13)
    ids = [r["id"] for s in splits.values() for r in s]
    assert sorted(ids) == sorted(r["id"] for r in records)  # nothing lost, nothing twice
    assert abs(len(splits["test"]) - 11) <= 1 and abs(len(splits["val"]) - 11) <= 1
    test = Counter(stratum(r) for r in splits["test"])
    val = Counter(stratum(r) for r in splits["val"])
    for key, n in SIZES.items():
        if n >= 10:  # every stratum large enough for one held-out record gets its share
            assert test[key] == pytest.approx(n * 0.1, abs=1) and val[key] == pytest.approx(n * 0.1, abs=1)


def test_split_is_deterministic_and_seeded():
    records = _records(SIZES)
    a = stratified_split(records, 0.1, 0.1, seed=13)
    b = stratified_split(list(reversed(records)), 0.1, 0.1, seed=13)
    c = stratified_split(records, 0.1, 0.1, seed=14)
    assert a == b
    assert [r["id"] for r in a["test"]] != [r["id"] for r in c["test"]]


def test_a_new_record_moves_few_others():
    records = _records(SIZES)
    before = {r["id"]: name for name, rs in stratified_split(records, 0.1, 0.1, seed=13).items() for r in rs}
    extra = _records({("banking", "es"): 11})[-1]  # an 11th Spanish banking record
    after = {
        r["id"]: name for name, rs in stratified_split(records + [extra], 0.1, 0.1, 13).items() for r in rs
    }
    moved = [i for i in before if before[i] != after[i]]
    # it may take a held-out place (pushing one record back) and shift a rounding remainder
    # (one more); a shared shuffle moved a third of the records here
    assert len(moved) <= 2, moved
    assert extra["id"] in after


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match="sum below 1"):
        stratified_split(_records(SIZES), 0.5, 0.5, seed=1)


def test_domain_weights_are_inverse_frequency_with_mean_one():
    records = _records({("banking", "en"): 30, ("travel", "en"): 10})
    weights = domain_weights(records)
    assert weights["travel"] == pytest.approx(3 * weights["banking"])
    mean = (30 * weights["banking"] + 10 * weights["travel"]) / 40
    assert mean == pytest.approx(1.0)


def test_same_seed_same_bytes(tmp_path, root):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        config = DataConfig(inputs=[str(root / "data" / "raw")], out_dir=str(out), tokenizer="none")
        assert main(config) == 0
        outs.append(out)
    for f in (
        "train.jsonl",
        "val.jsonl",
        "test.jsonl",
        "train.messages.jsonl",
        "CARD.md",
        "domain_weights.json",
    ):
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    report = (outs[0] / "report.json").read_text()
    assert '"duplicates"' in report and '"redactions"' in report
