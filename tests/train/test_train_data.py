"""Training examples: completion-only labels, truncation, mixing and balancing."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from data.prompt import load_tokenizer
from train.dataset import (
    IGNORE,
    Stats,
    TrainDataError,
    build_split,
    mix_in,
    read_mix,
    stratified_resample,
    tokenize,
)

MESSAGES = [
    {"role": "system", "content": "You write procedures."},
    {"role": "user", "content": "Intent: turn on dark mode\nContext: none"},
    {"role": "assistant", "content": '{"schema": "ordered_steps", "steps": ["Open \\"Settings\\"."]}'},
]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("smollm2")


def test_labels_mask_everything_but_the_reply(tokenizer):
    enc = tokenize(tokenizer, MESSAGES, max_length=512)
    ids, labels = enc["input_ids"], enc["labels"]
    assert len(ids) == len(labels) and not enc["truncated"]
    first = next(i for i, label in enumerate(labels) if label != IGNORE)
    assert all(label == IGNORE for label in labels[:first])  # system, user and the assistant header
    assert labels[first:] == ids[first:]  # the reply, contiguous to the end
    reply = tokenizer.decode(ids[first:])
    assert reply.startswith(MESSAGES[-1]["content"])
    assert reply[len(MESSAGES[-1]["content"]) :].strip() == tokenizer.eos_token  # learns to stop
    prompt = tokenizer.decode(ids[:first])
    assert prompt.endswith("assistant\n") and "dark mode" in prompt


def test_truncation_is_counted_and_fully_cut_replies_are_listed(tokenizer):
    stats = Stats()
    rows = [{"id": "long", "domain": "x", "messages": MESSAGES}]
    assert build_split(tokenizer, rows, max_length=10, weights={}, stats=stats) == []
    assert stats.truncated == 1 and stats.dropped_fully_truncated == ["long"]
    kept = build_split(tokenizer, rows, max_length=512, weights={"x": 1.5}, stats=Stats())
    assert kept[0]["weight"] == 1.5 and kept[0]["domain"] == "x"


def test_mix_formats_and_ratio(tmp_path):
    path = tmp_path / "mix.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
        {"prompt": "capital of France?", "completion": "Paris."},
        {"instruction": "Add", "input": "2+2", "output": "4"},
    ] * 10
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    mix = read_mix(path)
    assert mix[2]["messages"][0]["content"] == "Add\n\n2+2"
    own = [{"id": str(i), "domain": "travel", "messages": MESSAGES} for i in range(90)]
    mixed = mix_in(own, mix, ratio=0.1, seed=1)
    assert len(mixed) == 100 and sum(r["domain"] == "general_mix" for r in mixed) == 10
    path.write_text('{"text": "no"}\n')
    with pytest.raises(TrainDataError, match=rf"{path}:1: expected"):
        read_mix(path)


def test_stratified_resample_equalises_domains():
    rows = [{"id": f"a{i}", "domain": "a"} for i in range(30)] + [
        {"id": f"b{i}", "domain": "b"} for i in range(10)
    ]
    out = stratified_resample(rows, seed=3)
    assert Counter(r["domain"] for r in out) == {"a": 20, "b": 20}
    assert out == stratified_resample(rows, seed=3)
