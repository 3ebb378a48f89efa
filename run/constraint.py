"""Decoding constraints derived from the output schema, bounded so generation always closes.

Two grammars come from one walk over `$defs/output` of data/schema.json, so no field is restated
here: `LarkGrammar` (llguidance's Lark dialect, for our own decoder in run/decoder.py) and
`SchemaGrammar` (GBNF, for llama-cpp-python's grammar sampler: the `--constraint gbnf` ablation).
The engine talks to one small interface, `Constraint`: given `Bounds`, it says how many tokens the
longest allowed answer can take.

Why generation always closes: every array and string in the grammar has an upper bound, and the
grammar only admits characters of the Basic Multilingual Plane (at most 3 UTF-8 bytes each; no
control characters, no `\\u` escapes). A token is at least one byte (both samplers reject empty
pieces), so the longest admissible answer in bytes, plus one end-of-sequence token, bounds the
tokens it can take. `fit_bounds` picks the loosest bounds whose worst case fits the token budget;
`max_tokens` is then never reached and an answer can never be cut off.

The characters a string may hold come from the schema too: each output string says `not` to
`$defs/hidden_characters`, a single character class, and the grammar admits its complement
(minus the quote and the backslash, which only appear as the escapes json.dumps writes).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from data.schema import definition

# Bytes per admitted character: the BMP is at most 3 UTF-8 bytes; the two escapes (\" and \\) are 2.
CHAR_BYTES = 3
# Always excluded, whatever the schema says: C0 controls, which JSON must escape (the grammar has
# no \\u escapes), surrogates, and everything past the BMP, which would break CHAR_BYTES.
ALWAYS_EXCLUDED = ((0x00, 0x1F), (0xD800, 0xDFFF), (0x10000, 0x10FFFF))
# One optional space after ':' and ',' in GBNF, where json.dumps (the training serialisation) puts one.
SPACE_RULE = '" "?'
# The separators json.dumps writes; the Lark grammar admits exactly these.
ITEM_SEP, KEY_SEP = ", ", ": "

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
    "not",
}
_CLASS_ITEM = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8}))")


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


def _class_ranges(pattern: str, where: str) -> list[tuple[int, int]]:
    """The code point ranges of a one-class regex such as `[\x00-\x1f\u200b]`, or GrammarError."""
    body = re.fullmatch(r"\[([^\]^][^\]]*)\]", pattern)
    if body is None:
        raise GrammarError(
            f"{where}: 'not' must name one character class like [\\x00-\\x1F], not {pattern!r}"
        )
    text, pos, ranges = body.group(1), 0, []
    while pos < len(text):
        low = _CLASS_ITEM.match(text, pos)
        if low is None:
            raise GrammarError(
                f"{where}: write each class member as \\xHH, \\uHHHH or \\UHHHHHHHH ({pattern!r})"
            )
        lo = hi = int(next(g for g in low.groups() if g), 16)
        pos = low.end()
        if text.startswith("-", pos):
            high = _CLASS_ITEM.match(text, pos + 1)
            if high is None:
                raise GrammarError(f"{where}: a range needs an escaped upper end ({pattern!r})")
            hi, pos = int(next(g for g in high.groups() if g), 16), high.end()
        ranges.append((lo, hi))
    return ranges


def _merged(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return tuple(out)


class _Builder:
    """Walks a JSON schema; each visit returns (rule name, longest match in bytes).

    The walk and the sizes are shared; the two dialects below only spell the rules.
    """

    def __init__(self, schema: dict[str, Any], bounds: Bounds):
        self.defs = schema.get("$defs", {})
        self.bounds = bounds
        self.rules: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    def rule_name(self, name: str) -> str:
        raise NotImplementedError

    def literal(self, value: Any) -> str:
        raise NotImplementedError

    def add(self, name: str, expr: str, size: int) -> tuple[str, int]:
        name = self.rule_name(name)
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
            return self.add(name, " | ".join(self.literal(v) for v in values), size)
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
        rule = self.rule_name(name)
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
        members, size = [], 2  # the braces
        for key, sub in props.items():
            rule, sub_size = self.visit(sub, f"{name}-{key}")
            members.append((key, rule))
            size += len(json.dumps(key).encode()) + len(KEY_SEP) + sub_size
        size += len(ITEM_SEP) * (len(members) - 1)
        return self.add(name, self.object_expr(members), size)

    def array(self, node: dict[str, Any], name: str) -> tuple[str, int]:
        if "maxItems" not in node:
            raise GrammarError(f"{name}: an array needs maxItems, or generation may never close")
        low = node.get("minItems", 0)
        high = self.bounds.cap(low, node["maxItems"], self.bounds.items)
        item, item_size = self.visit(node["items"], f"{name}-item")
        size = 2 + high * item_size + len(ITEM_SEP) * max(0, high - 1)
        return self.add(name, self.array_expr(item, low, high), size)

    def string(self, node: dict[str, Any], name: str) -> tuple[str, int]:
        if "maxLength" not in node:
            raise GrammarError(f"{name}: a string needs maxLength, or generation may never close")
        low = node.get("minLength", 0)
        high = self.bounds.cap(low, node["maxLength"], self.bounds.length)
        ranges = list(ALWAYS_EXCLUDED)
        if "not" in node:
            banned = node["not"]
            if "$ref" in banned:
                banned = self.defs[banned["$ref"].removeprefix("#/$defs/")]
            ranges += _class_ranges(banned.get("pattern", ""), f"{name}.not")
        return self.add(name, self.string_expr(name, low, high, _merged(ranges)), 2 + CHAR_BYTES * high)

    def object_expr(self, members: list[tuple[str, str]]) -> str:
        raise NotImplementedError

    def array_expr(self, item: str, low: int, high: int) -> str:
        raise NotImplementedError

    def string_expr(self, name: str, low: int, high: int, ranges: tuple[tuple[int, int], ...]) -> str:
        raise NotImplementedError


def _gbnf_literal(value: Any) -> str:
    """A GBNF (or Lark) literal matching `json.dumps(value)` exactly."""
    text = json.dumps(value, ensure_ascii=False)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _GbnfBuilder(_Builder):
    """llama.cpp's GBNF: an optional space after ':' and ',' (the old path's behaviour)."""

    def __init__(self, schema: dict[str, Any], bounds: Bounds):
        super().__init__(schema, bounds)
        self.rules["sp"] = SPACE_RULE
        self.chars: dict[tuple, str] = {}  # excluded ranges -> char rule name

    def rule_name(self, name: str) -> str:
        return re.sub(r"[^a-zA-Z0-9-]", "-", name)  # GBNF rule names allow only these

    def literal(self, value: Any) -> str:
        return _gbnf_literal(value)

    def object_expr(self, members: list[tuple[str, str]]) -> str:
        parts = [f'{self.literal(key)} ":" sp {rule}' for key, rule in members]
        return '"{" ' + ' "," sp '.join(parts) + ' "}"'

    def array_expr(self, item: str, low: int, high: int) -> str:
        if high == 0:
            return '"[" "]"'
        more = f'( "," sp {item} ){{{max(0, low - 1)},{high - 1}}}'
        return f'"[" {item} {more} "]"' if low else f'"[" ( {item} {more} )? "]"'

    def string_expr(self, name: str, low: int, high: int, ranges: tuple[tuple[int, int], ...]) -> str:
        if ranges not in self.chars:
            char = "char" if not self.chars else f"char-{len(self.chars)}"
            spans = "".join(f"\\U{lo:08X}-\\U{hi:08X}" for lo, hi in ranges)
            self.rules[char] = f'[^"\\\\{spans}] | "\\\\" ["\\\\]'
            self.chars[ranges] = char
        return f'"\\"" {self.chars[ranges]}{{{low},{high}}} "\\""'

    def render(self, root: str) -> str:
        rules = {"root": root, **self.rules}
        return "\n".join(f"{k} ::= {v}" for k, v in rules.items()) + "\n"


class _LarkBuilder(_Builder):
    """llguidance's Lark dialect: exactly json.dumps' separators; each string is one lexeme."""

    def rule_name(self, name: str) -> str:
        return re.sub(r"[^a-z0-9_]", "_", name.lower())  # Lark rules are lower case

    def literal(self, value: Any) -> str:
        return json.dumps(json.dumps(value, ensure_ascii=False), ensure_ascii=False)

    def object_expr(self, members: list[tuple[str, str]]) -> str:
        parts, text = [], "{"
        for i, (key, rule) in enumerate(members):
            text += (ITEM_SEP if i else "") + json.dumps(key) + KEY_SEP
            parts += [json.dumps(text, ensure_ascii=False), rule]
            text = ""
        return " ".join(parts) + ' "}"'

    def array_expr(self, item: str, low: int, high: int) -> str:
        if high == 0:
            return '"[]"'
        more = f" ({json.dumps(ITEM_SEP)} {item}){{{max(0, low - 1)},{high - 1}}}" if high > 1 else ""
        return f'"[" {item}{more} "]"' if low else f'"[" ({item}{more})? "]"'

    def string_expr(self, name: str, low: int, high: int, ranges: tuple[tuple[int, int], ...]) -> str:
        # Rust's regex has no surrogates to exclude: UTF-8 cannot encode them.
        spans = "".join(
            f"\\U{lo:08X}-\\U{min(hi, 0x10FFFF):08X}" for lo, hi in ranges if lo < 0xD800 or lo > 0xDFFF
        )
        terminal = self.rule_name(name).upper() + "_TEXT"
        self.rules[terminal] = f'/"(?:[^"\\\\{spans}]|\\\\["\\\\]){{{low},{high}}}"/'
        return terminal

    def render(self, root: str) -> str:
        rules = {"start": root, **self.rules}
        return "\n".join(f"{k}: {v}" for k, v in rules.items()) + "\n"


class _SchemaGrammar:
    """A grammar from one `$defs` entry of data/schema.json (default: the whole output).

    `schema` replaces the entry with any JSON schema; the build raises GrammarError for anything
    it cannot bound, rather than falling back to generic JSON.
    """

    builder: type[_GbnfBuilder] | type[_LarkBuilder]
    dialect: str

    def __init__(self, definition_name: str = "output", schema: dict[str, Any] | None = None):
        self.definition_name = definition_name
        self.schema = schema if schema is not None else definition(definition_name)
        self.name = f"{self.dialect}:{definition_name}"
        self._built: dict[Bounds, tuple[str, int]] = {}
        self.text(Bounds())  # build once now, so a schema the grammar cannot express fails here

    def _build(self, bounds: Bounds) -> tuple[str, int]:
        if bounds not in self._built:
            builder = self.builder(self.schema, bounds)
            root, size = builder.visit(self.schema, self.definition_name)
            self._built[bounds] = (builder.render(root), size)
        return self._built[bounds]

    def text(self, bounds: Bounds) -> str:
        """The grammar text under `bounds`."""
        return self._build(bounds)[0]

    def worst_case_tokens(self, bounds: Bounds) -> int:
        return self._build(bounds)[1] + 1  # + the end-of-sequence token

    @functools.cached_property
    def min_items(self) -> dict[str, int]:
        """minItems of every array property the grammar's answer can hold, by key: where it may close."""
        defs, found = self.schema.get("$defs", {}), {}

        def walk(node: Any) -> None:
            if isinstance(node, list):
                for value in node:
                    walk(value)
            elif isinstance(node, dict):
                if "$ref" in node:
                    walk(defs[node["$ref"].removeprefix("#/$defs/")])
                for key, sub in node.get("properties", {}).items():
                    if sub.get("type") == "array":
                        found[key] = sub.get("minItems", 0)
                for key, value in node.items():
                    if key != "$defs":
                        walk(value)

        walk(self.schema)
        return found


class SchemaGrammar(_SchemaGrammar):
    """GBNF for llama-cpp-python's grammar sampler (`--constraint gbnf`)."""

    builder = _GbnfBuilder
    dialect = "gbnf"

    def gbnf(self, bounds: Bounds) -> str:
        """The GBNF text under `bounds`."""
        return self.text(bounds)

    def sampling_kwargs(self, bounds: Bounds) -> dict[str, Any]:
        """Keyword arguments for llama_cpp's `create_chat_completion` that enforce the grammar."""
        from llama_cpp import LlamaGrammar

        return {"grammar": LlamaGrammar.from_string(self.gbnf(bounds), verbose=False)}


class LarkGrammar(_SchemaGrammar):
    """llguidance's Lark dialect for run/decoder.py (`--constraint llguidance`, the default)."""

    builder = _LarkBuilder
    dialect = "llguidance"

    def lark(self, bounds: Bounds) -> str:
        """The Lark text under `bounds`."""
        return self.text(bounds)


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
