"""Normalization: Unicode NFC, whitespace, boilerplate, and canonical casing of app artifacts."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from data.schema import output_fields

_SPACE_RE = re.compile(r"\s+")
# Numbering and bullets are rendered later, so an authored "1. Tap X" or "Step 2: Tap X" is
# boilerplate; so is a leading "Please" and a chatty preamble.
_NUMBERING_RE = re.compile(
    r"^(?:(?:step|paso|étape|etape|schritt|passo)\s*\d+\s*[:.)-]\s*|\d{1,2}\s*[.)]\s+|[-*•·]\s+)",
    re.I,
)
_PLEASE_RE = re.compile(r"^(?:please|por favor|s'il vous plaît|bitte)[,:]?\s+", re.I)
_PREAMBLE_RE = re.compile(r"^(?:sure|of course|certainly|ok(?:ay)?)[!,.]\s+", re.I)

# Canonical lowercase platform names; anything else is just lowercased.
PLATFORM_ALIASES = {
    "iphone": "ios",
    "ipad": "ipados",
    "ipad os": "ipados",
    "mac": "macos",
    "mac os": "macos",
    "osx": "macos",
    "os x": "macos",
    "win": "windows",
    "windows 11": "windows",
    "windows 10": "windows",
    "browser": "web",
    "website": "web",
    "desktop web": "web",
    "terminal": "cli",
    "command line": "cli",
    "smart tv": "tv",
    "android tv": "tv",
    "apple tv": "tv",
    "playstation": "console",
    "xbox": "console",
    "switch": "console",
}


# Invisible formatting characters: zero-width spaces and joiners, bidi marks, embeddings, overrides
# and isolates, word joiners and invisible operators, the BOM, the soft hyphen. A user cannot
# have meant them as text, and they can hide or reorder what a reader (or a rule) sees.
INVISIBLE = re.compile(r"[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")
# Control characters no text field produces: C0 but tab, line feed and carriage return; DEL; C1.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def user_text(value: str) -> tuple[str, int]:
    """A user's text with its invisible formatting characters removed, and how many were removed."""
    cleaned, removed = INVISIBLE.subn("", value)
    return cleaned, removed


def text(value: str) -> str:
    """NFC, collapse whitespace (including non-breaking spaces) and strip."""
    return _SPACE_RE.sub(" ", unicodedata.normalize("NFC", value)).strip()


def _capitalize_first(value: str) -> str:
    return value[:1].upper() + value[1:] if value else value


def item(value: str) -> str:
    """A list item (step, constraint, check): text() plus numbering and politeness removed."""
    value = text(value)
    value = _PREAMBLE_RE.sub("", value)
    stripped = _NUMBERING_RE.sub("", value)
    stripped = _PLEASE_RE.sub("", stripped)
    return _capitalize_first(stripped) if stripped != value else value


def locale(value: str) -> str:
    """'es_es' / 'ES-es' -> 'es-ES'."""
    parts = text(value).replace("_", "-").split("-")
    if len(parts) >= 2:
        return f"{parts[0].lower()}-{parts[1].upper()}"
    return parts[0].lower()


def platform(value: str) -> str:
    """'iOS' -> 'ios', 'iPhone' -> 'ios', 'Mac OS' -> 'macos'."""
    key = text(value).lower()
    return PLATFORM_ALIASES.get(key, key)


def _strings(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _strings(v, fn) for k, v in value.items()}
    return value


def _context(context: Any) -> Any:
    if not isinstance(context, dict):
        return context
    out = _strings(context, text)
    if isinstance(out.get("platform"), str):
        out["platform"] = platform(out["platform"])
    if isinstance(out.get("locale"), str):
        out["locale"] = locale(out["locale"])
    if isinstance(out.get("permissions"), list):
        out["permissions"] = [p.lower() if isinstance(p, str) else p for p in out["permissions"]]
    return out


def _output(output: Any) -> Any:
    if not isinstance(output, dict):
        return output
    out = {}
    for key, value in output.items():
        if isinstance(value, list):
            out[key] = [item(v) if isinstance(v, str) else v for v in value]
        elif isinstance(value, str):
            out[key] = text(value)
        else:
            out[key] = value
    # Canonical key order (the schema's) so that serialised outputs are byte-stable.
    kind = "refusal" if out.get("schema") == "refusal" else "procedure"
    order = {k: i for i, k in enumerate(output_fields(kind))}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def _meta(meta: Any) -> Any:
    if not isinstance(meta, dict):
        return meta
    out = _strings(meta, text)
    for key in ("domains", "tags"):
        if isinstance(out.get(key), list):
            out[key] = [
                t.lower().replace(" ", "_").replace("-", "_") if isinstance(t, str) else t for t in out[key]
            ]
    if isinstance(out.get("language"), str):
        out["language"] = out["language"].lower()
    return out


def normalize_record(record: Any) -> Any:
    """Normalize one record. Tolerates malformed structure: validation reports that afterwards."""
    if not isinstance(record, dict):
        return record
    out = dict(record)
    inp = record.get("input")
    if isinstance(inp, dict):
        inp = dict(inp)
        if isinstance(inp.get("intent"), str):
            inp["intent"] = text(inp["intent"])
        if "context" in inp:
            inp["context"] = _context(inp["context"])
        out["input"] = inp
    if "output" in record:
        out["output"] = _output(record["output"])
    if "meta" in record:
        out["meta"] = _meta(record["meta"])
    return out
