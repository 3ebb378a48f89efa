"""Prepare the dataset: validate, normalize, redact, dedup, format and split.

python -m data [FILE_OR_DIR ...] [--config configs/data.yaml] [--key value ...]
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from data.card import build_card
from data.dedup import near_duplicates
from data.normalize import normalize_record
from data.prompt import AssistantFormat, build_messages, chat_text, load_tokenizer
from data.redact import redact_record
from data.schema import validate_record
from data.settings import UserError, dump_config, option, parse_config, user_errors
from data.split import domain_weights, language, primary_domain, stratified_split


@dataclass
class DataConfig:
    """Settings of `python -m data`."""

    inputs: list[str] = option(["data/raw"], "JSONL files or folders of *.jsonl to prepare (also positional)")
    out_dir: str = option("data/processed", "where the splits, card and report are written")
    seed: int = option(13, "drives the shuffle of the split and the MinHash permutations")
    val_frac: float = option(0.1, "share of records held out for validation")
    test_frac: float = option(0.1, "share of records held out for testing")
    dedup_threshold: float = option(
        0.7,
        "word-shingle Jaccard at or above which two records are near-duplicates; "
        "0.7 drops reworded copies while the same task on two platforms (different steps) survives",
    )
    num_perm: int = option(128, "MinHash permutations; 128 keeps the Jaccard estimate within about ±0.09")
    shingle: int = option(3, "words per shingle for dedup")
    skip_invalid: bool = option(False, "report and skip invalid lines instead of failing")
    assistant_format: AssistantFormat = option("json", "assistant message: 'json' or the 'numbered' list")
    tokenizer: str = option(
        "smollm2", "chat template used to render `text`: smollm2, a model folder, or none"
    )


class DataError(UserError, RuntimeError):
    """A problem with the input data; the message lists every located error."""


def _files(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"))
            if not found:
                raise DataError(f"{path}: folder has no *.jsonl files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder (pass JSONL files or folders of them)")
    return files


def _content_id(record: dict[str, Any]) -> str:
    digest = hashlib.sha1(
        json.dumps(record["input"], sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    return f"rec-{digest[:12]}"


def read_records(files: list[Path]) -> tuple[list[dict[str, Any]], list[str], int]:
    """Parse, normalize and validate every line. Returns (valid records, error lines, lines read)."""
    from tqdm import tqdm

    records, errors, seen, read = [], [], {}, 0
    lines = [
        (f, i, line) for f in files for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
    ]
    for path, lineno, line in tqdm(lines, desc="validate", unit="rec", disable=None):
        if not line.strip():
            continue
        read += 1
        where = f"{path}:{lineno}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(
                f"{where}: <line>: not valid JSON: {e.msg} at column {e.colno} (one JSON object per line)"
            )
            continue
        record = normalize_record(raw)
        problems = validate_record(record)
        if problems:
            errors += [f"{where}: {field}: {message}" for field, message in problems]
            continue
        record.setdefault("id", _content_id(record))
        if record["id"] in seen:
            errors.append(
                f"{where}: id: {record['id']!r} already used at {seen[record['id']]} (ids must be unique)"
            )
            continue
        seen[record["id"]] = where
        records.append({"id": record.pop("id"), **record})
    return records, errors, read


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("jsonschema", "datasketch", "rapidfuzz", "phonenumbers", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _format(splits: dict[str, list[dict[str, Any]]], config: DataConfig, out: Path) -> dict[str, Any] | None:
    """Write {split}.messages.jsonl; with a tokenizer also the rendered `text` and token stats."""
    tokenizer = None if config.tokenizer == "none" else load_tokenizer(config.tokenizer)
    stats = {}
    for name, rows in splits.items():
        formatted, lengths = [], []
        for r in rows:
            messages = build_messages(r, config.assistant_format)
            row = {
                "id": r["id"],
                "domain": primary_domain(r),
                "language": language(r),
                "messages": messages,
            }
            if tokenizer is not None:
                row["text"] = chat_text(tokenizer, messages)
                lengths.append(len(tokenizer(row["text"], add_special_tokens=False)["input_ids"]))
            formatted.append(row)
        _write_jsonl(out / f"{name}.messages.jsonl", formatted)
        if lengths:
            lengths.sort()
            stats[name] = {
                "mean": round(sum(lengths) / len(lengths), 1),
                "p95": lengths[int(0.95 * (len(lengths) - 1))],
                "max": lengths[-1],
            }
    return {"tokenizer": config.tokenizer, "splits": stats} if tokenizer is not None else None


def main(config: DataConfig) -> int:
    """Run the preparation; returns the process exit code."""
    files = _files(config.inputs)
    records, errors, read = read_records(files)
    if errors:
        for line in errors:
            print(line, file=sys.stderr)
        bad = len({e.split(": ", 1)[0] for e in errors})
        if not config.skip_invalid:
            print(
                f"error: {bad} invalid record(s) in {read} read; fix them or pass --skip-invalid",
                file=sys.stderr,
            )
            return 1
        print(
            f"warning: skipped {bad} invalid record(s) of {read} read (--skip-invalid)",
            file=sys.stderr,
        )
    counts: Counter = Counter()
    redacted, n_redacted = [], 0
    for record in records:
        before = sum(counts.values())
        redacted.append(redact_record(record, counts))
        n_redacted += sum(counts.values()) > before
    kept, dropped = near_duplicates(
        redacted, config.dedup_threshold, config.num_perm, config.shingle, config.seed
    )
    splits = stratified_split(kept, config.val_frac, config.test_frac, config.seed)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        _write_jsonl(out / f"{name}.jsonl", rows)
    weights = domain_weights(splits["train"])
    (out / "domain_weights.json").write_text(json.dumps(weights, indent=2) + "\n", encoding="utf-8")
    report = {
        "inputs": [str(f) for f in files],
        "seed": config.seed,
        "read": read,
        "invalid": len({e.split(": ", 1)[0] for e in errors}),
        "invalid_errors": errors,
        "redactions": {"records": n_redacted, "by_type": dict(sorted(counts.items()))},
        "dedup_threshold": config.dedup_threshold,
        "duplicates": [p.as_dict() for p in dropped],
        "splits": {k: len(v) for k, v in splits.items()},
        "domain_weights": weights,
        "versions": _versions(),
    }
    report["tokens"] = _format(splits, config, out)
    (out / "report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    card = build_card(splits, report)
    (out / "CARD.md").write_text(card, encoding="utf-8")
    dump_config(config, out / "config.yaml")
    for pair in dropped:
        print(f"near-duplicate: dropped {pair.dropped} (jaccard {pair.jaccard:.2f} with {pair.kept})")
    print(card)
    print(
        f"wrote {out}/{{train,val,test}}.jsonl, *.messages.jsonl, domain_weights.json, report.json, CARD.md"
    )
    return 0


def parse_args(argv: list[str] | None = None) -> DataConfig:
    """Config from defaults, --config and flags; positional arguments are the inputs."""
    return parse_config(DataConfig, argv, positional="inputs")


if __name__ == "__main__":
    with user_errors(DataError):
        sys.exit(main(parse_args()))
