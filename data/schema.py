"""The data contract: loads data/schema.json and validates records with clear, located errors."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).with_name("schema.json")
REFUSAL = "refusal"


@functools.cache
def load_schema() -> dict[str, Any]:
    """The whole record schema, parsed once."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def definition(name: str) -> dict[str, Any]:
    """A named `$defs` entry (e.g. 'procedure', 'refusal', 'context') as a standalone schema."""
    schema = load_schema()
    return {"$defs": schema["$defs"], **schema["$defs"][name]}


@functools.cache
def _validator(name: str | None) -> jsonschema.Draft202012Validator:
    schema = load_schema() if name is None else definition(name)
    return jsonschema.Draft202012Validator(schema)


def is_refusal(output: dict[str, Any]) -> bool:
    """True when an output is a refusal rather than a procedure (the 'schema' discriminator)."""
    return isinstance(output, dict) and output.get("schema") == REFUSAL


def output_kind(output: Any) -> str:
    """'refusal' or 'procedure': which branch of $defs/output an output claims to be."""
    return "refusal" if is_refusal(output) else "procedure"


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<record>"


def _hint(error: jsonschema.ValidationError) -> str:
    """How to fix it: the field's own description from the schema, when it has one."""
    desc = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"allowed keys: {', '.join(allowed)}"
    if error.validator == "required":
        return "add the missing field (see data/schema.json)"
    return desc or "see data/schema.json"


def _message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, without echoing a long value back in full."""
    value, limit = error.instance, error.validator_value
    if error.validator == "maxLength":
        return f"is {len(value)} characters long; the limit is {limit}"
    if error.validator == "maxItems":
        return f"has {len(value)} items; at most {limit} are allowed"
    if error.validator == "minItems":
        return f"has {len(value)} items; at least {limit} needed" if value else "should be non-empty"
    return error.message if len(error.message) <= 160 else error.message[:157] + "..."


def _errors(name: str | None, value: Any, prefix: tuple = ()) -> list[tuple[str, str]]:
    found = []
    for error in sorted(_validator(name).iter_errors(value), key=lambda e: list(e.path)):
        path = prefix + tuple(error.absolute_path)
        if error.validator == "oneOf" and path[-1:] == ("output",):
            # "is not valid under any of the given schemas" helps nobody: validate against
            # the branch the output claims to be, via its 'schema' discriminator.
            found += _errors(output_kind(error.instance), error.instance, path)
            continue
        found.append((_path(path), f"{_message(error)} ({_hint(error)})"))
    return found


def validate_record(record: Any) -> list[tuple[str, str]]:
    """All problems with one record as (field.path, message); empty when it is valid."""
    return _errors(None, record)


def validate_output(output: Any) -> list[tuple[str, str]]:
    """All problems with one model output (procedure or refusal) as (field.path, message)."""
    return _errors("output", output, ("output",))


@functools.cache
def hidden_characters() -> re.Pattern:
    """The characters no output string may hold ($defs/hidden_characters), as a compiled class."""
    return re.compile(load_schema()["$defs"]["hidden_characters"]["pattern"])


def without_hidden(text: str) -> str:
    """`text` minus the characters no output string may hold ($defs/hidden_characters)."""
    return hidden_characters().sub("", text)


def context_fields() -> list[str]:
    """The context field names, in schema order."""
    return list(load_schema()["$defs"]["context"]["properties"])


def output_fields(kind: str) -> list[str]:
    """The output field names of 'procedure' or 'refusal', in schema order."""
    return list(load_schema()["$defs"][kind]["properties"])


def generated_schema_values() -> list[str]:
    """Values of procedure.schema that the model may generate (reserved ones excluded)."""
    prop = load_schema()["$defs"]["procedure"]["properties"]["schema"]
    return [v for v in prop["enum"] if v not in prop.get("x-reserved", [])]


def _shape(prop: dict[str, Any]) -> str:
    if "const" in prop:
        return json.dumps(prop["const"])
    if "enum" in prop:
        values = [v for v in prop["enum"] if v not in prop.get("x-reserved", [])]
        return json.dumps(values[0]) if len(values) == 1 else "one of " + "|".join(values)
    if prop.get("type") == "array":
        lo, hi = prop.get("minItems", 0), prop.get("maxItems", "n")
        return f"[{lo}-{hi} strings]"
    return "string"


def output_summary() -> str:
    """A compact statement of the output contract for the system prompt, derived from the schema.

    It is short on purpose: the full JSON Schema costs ~600 tokens per training example,
    while this costs ~80 and names every field, bound and allowed value. (Every prompt token
    is computed in every training step, so on CPU the prompt's length is training time.)
    """
    lines = []
    for kind in ("procedure", "refusal"):
        spec = load_schema()["$defs"][kind]
        fields = ", ".join(f'"{k}": {_shape(v)}' for k, v in spec["properties"].items())
        lines.append(f"{kind}: {{{fields}}}")
    return "\n".join(lines)
