"""Training examples: chat messages tokenized with the model's template, loss on the reply only."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.prompt import chat_text
from data.settings import UserError

IGNORE = -100  # label of tokens that carry no loss (PyTorch cross-entropy's ignore_index)


class TrainDataError(UserError, RuntimeError):
    """Missing or malformed training data; the message points at file:line."""


@dataclass
class Stats:
    """What happened to the examples on their way into the trainer; printed and saved."""

    read: dict[str, int] = field(default_factory=dict)
    truncated: int = 0
    dropped_fully_truncated: list[str] = field(default_factory=list)
    mixed_in: int = 0
    resampled: dict[str, int] = field(default_factory=dict)


def read_messages(path: Path, allow_empty: bool = False) -> list[dict[str, Any]]:
    """Rows of a *.messages.jsonl file written by `python -m data`, checked line by line."""
    if not path.is_file():
        raise TrainDataError(f"{path}: not found; run `just data` first (or pass --data-dir)")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise TrainDataError(f"{path}:{lineno}: not valid JSON: {e.msg}; rerun `just data`") from None
        messages = row.get("messages") if isinstance(row, dict) else None
        if not _valid_messages(messages):
            raise TrainDataError(
                f"{path}:{lineno}: messages: expected a list of {{role, content}} ending with an "
                "assistant reply; rerun `just data`"
            )
        rows.append(
            {
                "id": row.get("id", f"{path.stem}:{lineno}"),
                "domain": row.get("domain", "general"),
                "messages": messages,
            }
        )
    if not rows and not allow_empty:
        raise TrainDataError(f"{path}: no examples; check `just data` output")
    return rows


def _valid_messages(messages: Any) -> bool:
    return (
        isinstance(messages, list)
        and len(messages) >= 2
        and all(isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in messages)
        and messages[-1]["role"] == "assistant"
    )


def _mix_row(row: Any) -> list[dict[str, str]] | None:
    if isinstance(row, dict) and _valid_messages(row.get("messages")):
        return row["messages"]
    if (
        isinstance(row, dict)
        and isinstance(row.get("prompt"), str)
        and isinstance(row.get("completion"), str)
    ):
        return [
            {"role": "user", "content": row["prompt"]},
            {"role": "assistant", "content": row["completion"]},
        ]
    if (
        isinstance(row, dict)
        and isinstance(row.get("instruction"), str)
        and isinstance(row.get("output"), str)
    ):
        prompt = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]
    return None


def read_mix(path: Path) -> list[dict[str, Any]]:
    """A general instruction set in one of three common shapes, checked line by line."""
    if not path.is_file():
        raise TrainDataError(f"{path}: mix file not found (--mix-path)")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            messages = _mix_row(json.loads(line))
        except json.JSONDecodeError as e:
            raise TrainDataError(f"{path}:{lineno}: not valid JSON: {e.msg}") from None
        if messages is None:
            raise TrainDataError(
                f"{path}:{lineno}: expected {{messages: [...]}}, {{prompt, completion}} "
                "or {instruction, output}"
            )
        rows.append({"id": f"mix:{lineno}", "domain": "general_mix", "messages": messages})
    return rows


def mix_in(
    rows: list[dict[str, Any]], mix: list[dict[str, Any]], ratio: float, seed: int
) -> list[dict[str, Any]]:
    """Add general examples so that they make up `ratio` of the result."""
    if not 0 <= ratio < 1:
        raise TrainDataError(f"mix_ratio={ratio}: must be in [0, 1); 0.05-0.1 is typical")
    want = round(len(rows) * ratio / (1 - ratio))
    if want > len(mix):
        raise TrainDataError(f"mix_ratio={ratio} needs {want} mix examples but the mix file has {len(mix)}")
    return rows + random.Random(seed).sample(mix, want)


def stratified_resample(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Resample so every domain has the same count (the mean), keeping the total about the same."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["domain"]].append(row)
    target = round(len(rows) / len(groups))
    rng = random.Random(seed)
    out = []
    for domain in sorted(groups):
        group = groups[domain]
        if len(group) >= target:
            out += rng.sample(group, target)
        else:
            out += group + rng.choices(group, k=target - len(group))
    return out


def tokenize(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> dict[str, Any]:
    """input_ids and labels for one conversation; labels are IGNORE outside the final reply.

    The prompt is the same conversation rendered up to the assistant header, so everything
    the template adds around the reply (its end-of-turn token included) stays trainable.
    """
    prompt = chat_text(tokenizer, messages[:-1], add_generation_prompt=True)
    full = chat_text(tokenizer, messages)
    if not full.startswith(prompt):
        raise TrainDataError(
            "the chat template renders the prompt differently with and without the reply; "
            "cannot find where the reply starts"
        )
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    labels = [
        tok if start >= len(prompt) else IGNORE
        for tok, (start, _) in zip(ids, enc["offset_mapping"], strict=True)
    ]
    truncated = len(ids) > max_length
    return {"input_ids": ids[:max_length], "labels": labels[:max_length], "truncated": truncated}


def build_split(
    tokenizer: Any, rows: list[dict[str, Any]], max_length: int, weights: dict[str, float], stats: Stats
) -> list[dict[str, Any]]:
    """Tokenized examples with their loss weight; fully truncated answers are dropped and listed."""
    from tqdm import tqdm

    out = []
    for row in tqdm(rows, desc="tokenize", unit="ex", disable=None):
        enc = tokenize(tokenizer, row["messages"], max_length)
        stats.truncated += enc.pop("truncated")
        if all(label == IGNORE for label in enc["labels"]):
            stats.dropped_fully_truncated.append(row["id"])
            continue
        out.append({**enc, "weight": float(weights.get(row["domain"], 1.0)), "domain": row["domain"]})
    return out


def domain_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Examples per domain, sorted by name."""
    return dict(sorted(Counter(r["domain"] for r in rows).items()))
