"""Lenient loading of test files: a reference needs only `input.intent` and `output.steps` (or a refusal).

Test files are JSONL in the record format of data/schema.json, but gold sets written by other
people rarely follow the generation style guide: more than 12 steps, no validation, long
descriptive steps. Such references are loaded and scored, never rejected; `style_counts` says
how many broke which rule, and the report prints it. Only a line that cannot be scored at all
(not JSON, no intent, neither steps nor a refusal) stops the run, with file:line and the fix.
Context fields the schema does not know, or whose values it rejects, are dropped (and counted)
so that the engine accepts the input.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.schema import definition, is_refusal, load_schema, validate_output
from data.settings import UserError
from eval.metrics import SCHEMA_MAX_STEPS, style_problems

# How many unscorable lines to list before "... and N more".
_SHOWN_ERRORS = 10
_STEP_MAX_LENGTH = load_schema()["$defs"]["procedure"]["properties"]["steps"]["items"]["maxLength"]


def file_sha256(path: str) -> str:
    """A test file's content hash: a report says which examples it scored, not only their path."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class EvalDataError(UserError, ValueError):
    """A test file that cannot be scored; the message locates every bad line."""


@dataclass
class Example:
    """One test example: the input, the reference output and its tags."""

    id: str
    intent: str
    context: dict[str, Any]
    output: dict[str, Any]
    domains: list[str] = field(default_factory=lambda: ["unknown"])
    language: str = "und"
    line: int = 0
    problems: list[str] = field(default_factory=list)  # style-guide rules the reference breaks

    @property
    def domain(self) -> str:
        return self.domains[0]

    @property
    def refusal(self) -> bool:
        return is_refusal(self.output)

    @property
    def fingerprint(self) -> str:
        """A hash of the input: a cached prediction is reused only for the same intent and context."""
        text = json.dumps([self.intent, self.context], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _problem(record: Any) -> str | None:
    """Why a record cannot be scored, as 'field: message (fix)', or None when it can."""
    if not isinstance(record, dict):
        return "<line>: not a JSON object (one record per line)"
    intent = (record.get("input") or {}).get("intent") if isinstance(record.get("input"), dict) else None
    if not isinstance(intent, str) or not intent.strip():
        return "input.intent: missing or empty (every reference needs the intent it answers)"
    output = record.get("output")
    if not isinstance(output, dict):
        return "output: missing (give output.steps, or a refusal with output.schema 'refusal')"
    if is_refusal(output):
        return None
    steps = output.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) and s.strip() for s in steps):
        return "output.steps: missing, empty or not a list of strings (the gold steps are required)"
    return None


def reference_problems(output: dict[str, Any]) -> list[str]:
    """The generation style-guide rules a reference breaks (counted in the report, never rejected)."""
    if is_refusal(output):
        return ["schema"] if validate_output(output) else []
    steps = output["steps"]
    found = []
    if len(steps) > SCHEMA_MAX_STEPS:
        found.append(f"more than {SCHEMA_MAX_STEPS} steps")
    if not output.get("validation"):
        found.append("no validation")
    if any(len(s) > _STEP_MAX_LENGTH for s in steps):
        found.append(f"steps over {_STEP_MAX_LENGTH} characters")
    style = style_problems(output, max_steps=10**6)  # step count is reported above
    found += [
        {"imperative": "not imperative", "numbered": "own list markers"}[r]
        for r in style
        if r != "validation"
    ]
    if not found and validate_output(output):
        found.append("schema")
    return found


def clean_context(context: Any, dropped: Counter) -> dict[str, Any]:
    """The context fields the schema accepts; each dropped field is counted by name."""
    if not isinstance(context, dict):
        if context:
            dropped["<not an object>"] += 1
        return {}
    import jsonschema

    validator = jsonschema.Draft202012Validator(definition("context"))
    kept = {}
    for key, value in context.items():
        if validator.is_valid({key: value}):
            kept[key] = value
        else:
            dropped[key] += 1
    return kept


def _example(record: dict[str, Any], line: int, dropped: Counter) -> Example:
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    domains = [d for d in meta.get("domains") or [] if isinstance(d, str)] or ["unknown"]
    output = record["output"]
    return Example(
        id=str(record.get("id") or f"line-{line}"),
        intent=record["input"]["intent"],
        context=clean_context(record["input"].get("context"), dropped),
        output=output,
        domains=domains,
        language=str(meta.get("language") or "und"),
        line=line,
        problems=reference_problems(output),
    )


def load_examples(path: str | Path, limit: int = 0) -> tuple[list[Example], dict[str, Any]]:
    """The examples of a JSONL test file and the load statistics; `limit` keeps an evenly spaced subset."""
    path = Path(path)
    if not path.is_file():
        raise EvalDataError(f"{path}: test file not found; run `just data` or pass --test-file FILE.jsonl")
    examples, errors, dropped, seen = [], [], Counter(), Counter()
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            errors.append(f"{path}:{n}: <line>: not valid JSON: {e.msg} at column {e.colno}")
            continue
        problem = _problem(record)
        if problem:
            errors.append(f"{path}:{n}: {problem}")
            continue
        example = _example(record, n, dropped)
        seen[example.id] += 1
        if seen[example.id] > 1:  # ids key the cache and the human sheets: keep them unique
            example.id = f"{example.id}~{seen[example.id]}"
        examples.append(example)
    if errors:
        shown = errors[:_SHOWN_ERRORS] + (
            [f"... and {len(errors) - _SHOWN_ERRORS} more"] * (len(errors) > 10)
        )
        raise EvalDataError("\n".join(shown) + f"\nerror: {len(errors)} unscorable line(s) in {path}")
    if not examples:
        raise EvalDataError(f"{path}: no examples; write one JSON record per line")
    total = len(examples)
    if 0 < limit < total:  # evenly spaced, so that a sorted file keeps its spread of domains
        examples = [examples[i * total // limit] for i in range(limit)]
    return examples, _stats(path, examples, total, dropped)


def _stats(path: Path, examples: list[Example], total: int, dropped: Counter) -> dict[str, Any]:
    broken = Counter(p for e in examples for p in e.problems)
    return {
        "test_file": str(path),
        "read": total,
        "evaluated": len(examples),
        "refusals": sum(e.refusal for e in examples),
        "domains": dict(sorted(Counter(e.domain for e in examples).items())),
        "languages": dict(sorted(Counter(e.language for e in examples).items())),
        "references_breaking_style": sum(bool(e.problems) for e in examples),
        "reference_style_problems": dict(sorted(broken.items())),
        "context_fields_dropped": dict(sorted(dropped.items())),
        "duplicate_ids_renamed": sum(1 for e in examples if "~" in e.id),
    }
