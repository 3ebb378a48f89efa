"""Decoding constraints: a GBNF grammar derived from the output schema, bounded so generation always closes.

The engine talks to one small interface, `Constraint`: given `Bounds`, it says how many tokens
the longest allowed answer can take and hands llama-cpp-python the keyword arguments that enforce
it (`grammar=` here; a faster backend would hand over `logits_processor=`). `SchemaGrammar` is the
GBNF implementation: it walks `$defs/output` of data/schema.json, so no field is restated here.

Why generation always closes: every array and string in the grammar has an upper bound, and the
grammar only admits characters of the Basic Multilingual Plane (at most 3 UTF-8 bytes each; no
control characters, no `\\u` escapes). A token is at least one byte (llama.cpp's grammar sampler
rejects empty pieces), so the longest admissible answer in bytes, plus one end-of-sequence token,
bounds the tokens it can take. `fit_bounds` picks the loosest bounds whose worst case fits the
token budget; `max_tokens` is then never reached and an answer can never be cut off.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from data.schema import definition

# Bytes per admitted character: the BMP is at most 3 UTF-8 bytes; the two escapes (\" and \\) are 2.
CHAR_BYTES = 3
# Code points a string may hold: the BMP without quote, backslash, control characters and surrogates.
CHAR_RULE = r'[^"\\\x00-\x1F\x7F\uD800-\uDFFF\U00010000-\U0010FFFF] | "\\" ["\\]'
# One optional space after ':' and ',', where json.dumps (the training serialisation) puts one.
SPACE_RULE = '" "?'

# Schema keywords that only annotate; everything else must be expressible or the build fails.
_ANNOTATIONS = {"description", "title", "$schema", "$id", "$defs", "examples", "default", "x-reserved"}
_ANNOTATIONS.add("type")  # read by visit() itself
_STRUCTURAL = {
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "enum",
    "const",
    "oneOf",
    "anyOf",
    "$ref",
}


class GrammarError(ValueError):
    """The schema uses something the grammar cannot express; raised instead of falling back to any JSON."""


@dataclass(frozen=True)
class Bounds:
    """The fraction of each schema `maxItems` and `maxLength` the grammar admits (1.0 = the schema's own)."""

    items: float = 1.0
    length: float = 1.0

    @classmethod
    def scaled(cls, scale: float) -> Bounds:
        """One knob for tightening: lengths shrink twice as fast as item counts.

        In the authored data, item counts reach the schema maxima (steps p95 11 of 12) while
        lengths have slack (step p95 76 of 200 characters), so lengths give way first.
        """
        return cls(items=min(1.0, 2 * scale), length=scale)

    def cap(self, low: int, high: int, fraction: float) -> int:
        """`high` scaled by `fraction`, never below the schema minimum `low`."""
        return max(low, int(high * fraction))


class Constraint(Protocol):
    """What the engine needs from a decoding constraint."""

    name: str

    def worst_case_tokens(self, bounds: Bounds) -> int:
        """The most tokens any admissible answer can take under `bounds`, end-of-sequence included."""
        ...

    def sampling_kwargs(self, bounds: Bounds) -> dict[str, Any]:
        """Keyword arguments for llama_cpp's `create_chat_completion` that enforce the constraint."""
        ...


def _literal(value: Any) -> str:
    """A GBNF literal matching `json.dumps(value)` exactly."""
    text = json.dumps(value, ensure_ascii=False)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Builder:
    """Walks a JSON schema; each visit returns (GBNF rule name, longest match in bytes)."""

    def __init__(self, schema: dict[str, Any], bounds: Bounds):
        self.defs = schema.get("$defs", {})
        self.bounds = bounds
        self.rules: dict[str, str] = {"char": CHAR_RULE, "sp": SPACE_RULE}
        self.sizes: dict[str, int] = {}

    def add(self, name: str, expr: str, size: int) -> tuple[str, int]:
        name = re.sub(r"[^a-zA-Z0-9-]", "-", name)  # GBNF rule names allow only these
        self.rules[name] = expr
        self.sizes[name] = size
        return name, size

    def visit(self, node: dict[str, Any], name: str) -> tuple[str, int]:
        unknown = set(node) - _ANNOTATIONS - _STRUCTURAL
        if unknown:
            raise GrammarError(f"{name}: the grammar cannot express {sorted(unknown)}; bound it another way")
        if "$ref" in node:
            return self.ref(node["$ref"])
        if "oneOf" in node or "anyOf" in node:
            options = node.get("oneOf") or node["anyOf"]
            branches = [self.visit(b, f"{name}-{i}") for i, b in enumerate(options)]
            return self.add(name, " | ".join(b for b, _ in branches), max(s for _, s in branches))
        if "const" in node or "enum" in node:
            values = [node["const"]] if "const" in node else node["enum"]
            values = [v for v in values if v not in node.get("x-reserved", [])]
            size = max(len(json.dumps(v, ensure_ascii=False).encode()) for v in values)
            return self.add(name, " | ".join(_literal(v) for v in values), size)
        kind = node.get("type")
        if kind == "object":
            return self.object(node, name)
        if kind == "array":
            return self.array(node, name)
        if kind == "string":
            return self.string(node, name)
        raise GrammarError(f"{name}: type {kind!r} has no grammar; use object, array, string, enum or const")

    def ref(self, ref: str) -> tuple[str, int]:
        if not ref.startswith("#/$defs/"):
            raise GrammarError(f"{ref}: only local '#/$defs/...' references are supported")
        name = ref.removeprefix("#/$defs/")
        rule = re.sub(r"[^a-zA-Z0-9-]", "-", name)
        if rule in self.sizes:
            return rule, self.sizes[rule]
        return self.visit(self.defs[name], name)

    def object(self, node: dict[str, Any], name: str) -> tuple[str, int]:
        props = node.get("properties", {})
        optional = set(props) - set(node.get("required", []))
        if optional or node.get("additionalProperties", True) is not False:
            raise GrammarError(
                f"{name}: every property must be required and additionalProperties false "
                f"(optional: {sorted(optional)}), so the answer has one shape"
            )
        parts, size = [], 2  # the braces
        for key, sub in props.items():
            rule, sub_size = self.visit(sub, f"{name}-{key}")
            parts.append(f'{_literal(key)} ":" sp {rule}')
            size += len(json.dumps(key).encode()) + 2 + sub_size  # key, ':' and a space
        size += 2 * (len(parts) - 1)  # ', ' between members
        return self.add(name, '"{" ' + ' "," sp '.join(parts) + ' "}"', size)

    def array(self, node: dict[str, Any], name: str) -> tuple[str, int]:
        if "maxItems" not in node:
            raise GrammarError(f"{name}: an array needs maxItems, or generation may never close")
        low = node.get("minItems", 0)
        high = self.bounds.cap(low, node["maxItems"], self.bounds.items)
        item, item_size = self.visit(node["items"], f"{name}-item")
        size = 2 + high * item_size + 2 * max(0, high - 1)
        if high == 0:
            return self.add(name, '"[" "]"', 2)
        more = f'( "," sp {item} ){{{max(0, low - 1)},{high - 1}}}'
        body = f"{item} {more}" if low else f"( {item} {more} )?"
        return self.add(name, f'"[" {body} "]"', size)

    def string(self, node: dict[str, Any], name: str) -> tuple[str, int]:
        if "maxLength" not in node:
            raise GrammarError(f"{name}: a string needs maxLength, or generation may never close")
        low = node.get("minLength", 0)
        high = self.bounds.cap(low, node["maxLength"], self.bounds.length)
        return self.add(name, f'"\\"" char{{{low},{high}}} "\\""', 2 + CHAR_BYTES * high)


class SchemaGrammar:
    """GBNF from one `$defs` entry of data/schema.json (default: the whole output, procedure or refusal).

    `schema` replaces the entry with any JSON schema; the build raises GrammarError for anything
    it cannot bound, rather than falling back to generic JSON.
    """

    def __init__(self, definition_name: str = "output", schema: dict[str, Any] | None = None):
        self.definition_name = definition_name
        self.schema = schema if schema is not None else definition(definition_name)
        self.name = f"gbnf:{definition_name}"
        self._built: dict[Bounds, tuple[str, int]] = {}
        self.gbnf(Bounds())  # build once now, so a schema the grammar cannot express fails here

    def _build(self, bounds: Bounds) -> tuple[str, int]:
        if bounds not in self._built:
            builder = _Builder(self.schema, bounds)
            root, size = builder.visit(self.schema, self.definition_name)
            rules = {"root": root, **builder.rules}
            self._built[bounds] = ("\n".join(f"{k} ::= {v}" for k, v in rules.items()) + "\n", size)
        return self._built[bounds]

    def gbnf(self, bounds: Bounds) -> str:
        """The grammar text under `bounds`."""
        return self._build(bounds)[0]

    def worst_case_tokens(self, bounds: Bounds) -> int:
        return self._build(bounds)[1] + 1  # + the end-of-sequence token

    def sampling_kwargs(self, bounds: Bounds) -> dict[str, Any]:
        from llama_cpp import LlamaGrammar

        return {"grammar": LlamaGrammar.from_string(self.gbnf(bounds), verbose=False)}


# Scales tried by fit_bounds, loosest first: 5% steps are fine enough to use most of a budget.
_LADDER = [round(1 - i * 0.05, 2) for i in range(20)] + [0.0]


def fit_bounds(constraint: Constraint, budget: int) -> Bounds | None:
    """The loosest `Bounds.scaled` bounds whose worst case fits `budget` tokens, or None if none does."""
    for scale in _LADDER:
        bounds = Bounds.scaled(scale)
        if constraint.worst_case_tokens(bounds) <= budget:
            return bounds
    return None


def tighter(bounds: Bounds) -> Bounds:
    """Bounds for a retry after a budget was exhausted: half the length fraction."""
    return Bounds.scaled(bounds.length / 2)


def check_compiles(gbnf: str, llama: Any) -> None:
    """Parse `gbnf` with llama.cpp's own grammar parser for a loaded model; GrammarError if it fails."""
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, gbnf.encode(), b"root")
    if not sampler:
        raise GrammarError("llama.cpp rejected the grammar (its parser printed the reason on stderr)")
    llama_cpp.llama_sampler_free(sampler)
