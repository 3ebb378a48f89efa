"""What crosses the engine's edge: the input's checks and cleaning, the answer's parsing and masking.

Pure functions of their arguments (no model), shared by the engine and its tests:
`check_input` (the schema's $defs/input), `clean_input` (invisible characters out, controls
rejected), `parse_answer` (a valid output or why not) and `mask_output` (PII out of the answer).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from data.redact import redact_value
from data.schema import definition, validate_output
from data.settings import UserError


class InputError(UserError, ValueError):
    """An intent or context that the schema rejects; the message names the field and the fix."""


def mask_output(output: dict[str, Any] | None, region: str | None) -> tuple[dict[str, Any] | None, dict]:
    """The answer with any PII the redactor finds masked, and the counts: whatever the model
    wrote (an address it invented, a number the input redaction missed) never reaches the user.

    A mask can be a character longer than a very short address; a masked answer that breaks the
    schema that way is None (the caller reports it), never the unmasked one.
    """
    if output is None:
        return None, {}
    counts: Counter = Counter()
    masked = redact_value(output, region, counts)
    return (None if counts and validate_output(masked) else masked), dict(counts)


def clean_input(intent: str, context: dict[str, Any] | None) -> tuple[str, dict[str, Any] | None, int]:
    """Intent and context with invisible formatting characters stripped, and how many went.

    Stripped, not rejected: they are invisible, so the user did not mean them as text (a
    zero-width space pasted from a web page), and removing them undoes a disguise such as a
    bidi override, so the safety rules read what a person sees. Other control characters (NUL,
    ESC, ...) are rejected with the field named: no text field produces them, so the request is
    malformed. An intent that is blank once stripped is an error.
    """
    from data.normalize import CONTROL, user_text

    removed = 0

    def clean(value: Any, where: str) -> Any:
        nonlocal removed
        if isinstance(value, list):
            return [clean(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        bad = CONTROL.search(value)
        if bad:
            raise InputError(
                f"{where}: holds the control character U+{ord(bad.group()):04X} at character {bad.start()}; "
                "remove it (tabs and line breaks are fine)"
            )
        value, n = user_text(value)
        removed += n
        return value

    intent = clean(intent, "intent")
    if not intent.strip():
        raise InputError("intent: is blank once invisible characters are removed; say what you want to do")
    if context:
        context = {k: clean(v, f"context.{k}") for k, v in context.items()}
    return intent, context, removed


def check_input(intent: Any, context: Any) -> None:
    """Raise InputError unless intent and context are valid under the schema's $defs/input."""
    import jsonschema

    value = {"intent": intent, **({"context": context} if context is not None else {})}
    errors = sorted(jsonschema.Draft202012Validator(definition("input")).iter_errors(value), key=str)
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.absolute_path) or "input"
        shown = e.message if len(e.message) < 120 else e.message[:117] + "..."
        raise InputError(f"{where}: {shown} (see $defs/input in data/schema.json)")


def parse_answer(text: str, strict: bool) -> tuple[dict[str, Any] | None, str | None]:
    """The output object in `text` and None, or None and why it is not a valid output.

    Strict (grammar on): the whole text is the object. Lenient (grammar off): the first JSON
    object in the text, so that an ablation measures schema validity rather than chatter.
    """
    try:
        if strict:
            value = json.loads(text)
        else:
            start = text.find("{")
            value, _ = json.JSONDecoder().raw_decode(text[max(start, 0) :])
    except json.JSONDecodeError as e:
        return None, f"not valid JSON ({e.msg} at character {e.pos})"
    problems = validate_output(value)
    if problems:
        path, message = problems[0]
        return None, f"not a valid output: {path}: {message}"
    return value, None
