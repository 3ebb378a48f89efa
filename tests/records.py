"""Small valid records for tests."""

from __future__ import annotations


def procedure(intent: str, steps: list[str], **context) -> dict:
    """A small valid record for tests."""
    record = {
        "input": {"intent": intent},
        "output": {
            "schema": "ordered_steps",
            "steps": steps,
            "constraints": [],
            "validation": ["Check it."],
        },
        "meta": {"domains": ["ecommerce"], "language": "en"},
    }
    if context:
        record["input"]["context"] = context
    return record
