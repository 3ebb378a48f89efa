"""The shipped dataset meets its targets: size, spread, languages, refusals, PII, style."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from data.__main__ import DataConfig, main
from data.schema import is_refusal
from data.split import language, primary_domain

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


@pytest.fixture(scope="module")
def raw(request):
    root = request.config.rootpath
    rows = []
    for path in sorted((root / "data" / "raw").glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return rows


def test_size_and_spread(raw):
    assert len(raw) >= 500
    domains = Counter(primary_domain(r) for r in raw)
    assert len(domains) >= 12
    assert min(domains.values()) >= 20  # no token domain


def test_languages_refusals_and_pii(raw):
    n = len(raw)
    assert sum(language(r) != "en" for r in raw) / n >= 0.10
    assert len({language(r) for r in raw}) >= 4
    assert sum(is_refusal(r["output"]) for r in raw) / n >= 0.05
    assert sum(bool(EMAIL_RE.search(json.dumps(r["input"]))) for r in raw) >= 10


CASELESS = {"zh", "ja", "ar", "hi", "ko", "th", "he"}


def test_style_guide(raw):
    for r in raw:
        out = r["output"]
        if is_refusal(out):
            continue
        assert 1 <= len(out["steps"]) <= 12, r["id"]
        for step in out["steps"]:
            assert not re.match(r"^\s*(\d+[.)]|step \d)", step, re.I), (r["id"], step)
            # the capital rule is for languages written with case; a Japanese step may open with
            # a Latin name ("android.com/find にアクセスします。")
            if r["meta"]["language"] not in CASELESS:
                assert step[0].isupper() or step[0] in '¿¡"`', (r["id"], step)


def test_contexts_are_varied(raw):
    with_context = [r["input"].get("context") or {} for r in raw]
    assert len({c.get("platform") for c in with_context if c.get("platform")}) >= 5
    assert sum(not c for c in with_context) >= 10  # some records carry no context at all
    assert sum(len(c) >= 5 for c in with_context) >= 30  # and some carry a rich one


def test_sample_train_is_small_and_valid(root):
    lines = (root / "data" / "sample_train.jsonl").read_text(encoding="utf-8").splitlines()
    assert 15 <= len(lines) <= 30


def test_preparation_masks_all_pii(tmp_path, root):
    out = tmp_path / "processed"
    assert main(DataConfig(inputs=[str(root / "data" / "raw")], out_dir=str(out), tokenizer="none")) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["redactions"]["by_type"].get("<EMAIL>", 0) >= 10
    assert report["redactions"]["by_type"].get("<PHONE>", 0) >= 10
    assert report["redactions"]["by_type"].get("<ORDER_ID>", 0) >= 5
    for name in ("train", "val", "test"):
        text = (out / f"{name}.jsonl").read_text(encoding="utf-8")
        assert not EMAIL_RE.search(text), name
    kept = sum(report["splits"].values())
    assert kept + len(report["duplicates"]) == report["read"] - report["invalid"]
    assert "## Domains" in (out / "CARD.md").read_text()
