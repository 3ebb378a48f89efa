"""The decoding grammar: derived from data/schema.json, bounded, and accepted by llama.cpp."""

from __future__ import annotations

import json
import warnings

import pytest

from data.schema import definition, load_schema, output_fields, validate_output
from run.constraint import (
    CHAR_BYTES,
    Bounds,
    GrammarError,
    LarkGrammar,
    SchemaGrammar,
    check_compiles,
    fit_bounds,
)


@pytest.fixture(scope="module")
def grammar() -> SchemaGrammar:
    return SchemaGrammar()


@pytest.fixture(scope="module")
def vocab():
    from llama_cpp import Llama

    from data.embedded import smollm2_gguf

    return Llama(model_path=str(smollm2_gguf()), vocab_only=True, verbose=False)


def test_grammar_names_every_output_field_and_no_reserved_value(grammar):
    text = grammar.gbnf(Bounds())
    for kind in ("procedure", "refusal"):
        for name in output_fields(kind):
            assert f'"\\"{name}\\""' in text, name
    schema_prop = load_schema()["$defs"]["procedure"]["properties"]["schema"]
    for reserved in schema_prop["x-reserved"]:
        assert reserved not in text
    for category in load_schema()["$defs"]["refusal"]["properties"]["category"]["enum"]:
        assert f'"\\"{category}\\""' in text


def test_every_string_and_array_is_bounded(grammar):
    text = grammar.gbnf(Bounds())
    assert "char{3,200}" in text and "char{3,240}" in text and "char{10,300}" in text
    assert "*" not in text and "+" not in text  # no unbounded repetition anywhere


def _longest(schema: dict, bounds: Bounds, defs: dict) -> object:
    """The longest instance the bounded grammar admits, built independently from the schema."""
    if "$ref" in schema:
        return _longest(defs[schema["$ref"].split("/")[-1]], bounds, defs)
    if "enum" in schema:
        values = [v for v in schema["enum"] if v not in schema.get("x-reserved", [])]
        return max(values, key=lambda v: len(json.dumps(v)))
    if "const" in schema:
        return schema["const"]
    if schema["type"] == "object":
        return {k: _longest(v, bounds, defs) for k, v in schema["properties"].items()}
    if schema["type"] == "array":
        n = bounds.cap(schema.get("minItems", 0), schema["maxItems"], bounds.items)
        return [_longest(schema["items"], bounds, defs) for _ in range(n)]
    n = bounds.cap(schema.get("minLength", 0), schema["maxLength"], bounds.length)
    return "€" * n  # a 3-byte character: the widest the grammar admits


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.2, 0.0])
def test_worst_case_is_the_longest_admissible_answer_in_bytes_plus_eos(grammar, scale):
    bounds = Bounds.scaled(scale)
    sizes = []
    for kind in ("procedure", "refusal"):
        answer = _longest(definition(kind), bounds, load_schema()["$defs"])
        assert validate_output(answer) == []
        sizes.append(len(json.dumps(answer, ensure_ascii=False).encode()))  # ', ' and ': ' as allowed
    assert len("€".encode()) == CHAR_BYTES
    assert grammar.worst_case_tokens(bounds) == max(sizes) + 1


@pytest.mark.parametrize("budget", [118, 256, 1000, 4096, 7168, 20000])
def test_fit_bounds_picks_the_loosest_bounds_within_the_budget(grammar, budget):
    bounds = fit_bounds(grammar, budget)
    assert bounds is not None
    assert grammar.worst_case_tokens(bounds) <= budget
    if bounds.length < 1.0:  # one step looser no longer fits
        assert grammar.worst_case_tokens(Bounds.scaled(round(bounds.length + 0.05, 2))) > budget


def test_fit_bounds_says_none_when_no_answer_fits(grammar):
    smallest = grammar.worst_case_tokens(Bounds.scaled(0.0))
    assert fit_bounds(grammar, smallest - 1) is None


@pytest.mark.parametrize(
    ("schema", "complaint"),
    [
        ({"type": "string", "minLength": 1}, "maxLength"),
        ({"type": "array", "items": {"type": "string", "maxLength": 5}}, "maxItems"),
        ({"type": "string", "maxLength": 5, "pattern": "^a"}, "pattern"),
        ({"type": "number"}, "number"),
        (
            {
                "type": "object",
                "properties": {"a": {"const": 1}},
                "required": [],
                "additionalProperties": False,
            },
            "required",
        ),
    ],
)
def test_schemas_the_grammar_cannot_bound_are_errors_not_generic_json(schema, complaint):
    with pytest.raises(GrammarError, match=complaint):
        SchemaGrammar("custom", schema)


@pytest.mark.parametrize("scale", [1.0, 0.35, 0.0])
def test_llama_cpp_compiles_the_grammar(grammar, vocab, scale):
    check_compiles(grammar.gbnf(Bounds.scaled(scale)), vocab)


def test_llama_cpp_rejection_is_reported(vocab):
    with pytest.raises(GrammarError, match="rejected"):
        check_compiles("root ::= missing-rule\n", vocab)


# -- the llguidance (Lark) grammar of run/decoder.py ---------------------------------------


@pytest.fixture(scope="module")
def lark_matcher(vocab):
    import llguidance
    from llguidance.llamacpp import lltokenizer_from_vocab

    with warnings.catch_warnings():  # llguidance reads token attributes by a deprecated name
        warnings.simplefilter("ignore", DeprecationWarning)
        tokenizer = lltokenizer_from_vocab(vocab._model.vocab)
    grammar = llguidance.LLMatcher.grammar_from_lark(LarkGrammar().lark(Bounds()))
    matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    return tokenizer, matcher


def _accepts(lark_matcher, text: str) -> bool:
    tokenizer, matcher = lark_matcher
    trial = matcher.deep_copy()
    return trial.consume_tokens(tokenizer.tokenize_str(text)) and trial.is_accepting()


def _raw_outputs() -> list[dict]:
    from pathlib import Path

    outputs = []
    for path in sorted(Path("data/raw").glob("*.jsonl")):
        outputs += [json.loads(line)["output"] for line in path.read_text(encoding="utf-8").splitlines()]
    return outputs


def test_every_authored_output_is_accepted_by_the_lark_grammar(lark_matcher):
    outputs = _raw_outputs()
    assert len(outputs) >= 600  # every authored record, refusals included
    rejected = [o for o in outputs if not _accepts(lark_matcher, json.dumps(o, ensure_ascii=False))]
    assert rejected == []


def _mutations() -> dict[str, dict]:
    base = {
        "schema": "ordered_steps",
        "steps": ["Open Settings.", 'Tap "Display".', 'Turn on "Dark mode".'],
        "constraints": [],
        "validation": ["The screen turns dark."],
    }
    return {
        "valid": base,
        "missing_key": {k: v for k, v in base.items() if k != "constraints"},
        "extra_key": {**base, "notes": []},
        "13_steps": {**base, "steps": [f"Tap item {i}." for i in range(13)]},
        "12_steps": {**base, "steps": [f"Tap item {i}." for i in range(12)]},
        "long_step": {**base, "steps": ["x" * 201]},
        "longest_step": {**base, "steps": ["x" * 200]},
        "control_char": {**base, "steps": ["Tap\x07 Save."]},
        "c1_control": {**base, "steps": ["Tap\x85 Save."]},
        "bidi_override": {**base, "steps": ["Tap \u202eevaS."]},
        "bidi_isolate": {**base, "steps": ["Tap \u2066Save\u2069."]},
        "zero_width": {**base, "steps": ["Tap Sa\u200bve."]},
        "line_separator": {**base, "steps": ["Tap\u2028Save."]},
        "bom": {**base, "steps": ["\ufeffTap Save."]},
        "emoji": {**base, "steps": ["Tap Save \U0001f600."]},
        "reserved_schema": {**base, "schema": "checklist"},
        "refusal": {
            "schema": "refusal",
            "category": "fraud",
            "reason": "I can't help with that.",
            "alternatives": [],
        },
    }


@pytest.mark.parametrize("name", list(_mutations()))
def test_lark_grammar_agrees_with_jsonschema_on_mutations(lark_matcher, name):
    output = _mutations()[name]
    schema_ok = validate_output(output) == []
    if name == "reserved_schema":
        schema_ok = False  # valid data, but reserved: never generated (x-reserved)
    assert _accepts(lark_matcher, json.dumps(output, ensure_ascii=False)) == schema_ok
    assert schema_ok == (name in ("valid", "12_steps", "longest_step", "refusal"))


def test_lark_grammar_admits_only_json_dumps_separators(lark_matcher):
    compact = json.dumps(_mutations()["valid"], ensure_ascii=False, separators=(",", ":"))
    assert not _accepts(lark_matcher, compact)
    assert _accepts(lark_matcher, json.dumps(_mutations()["valid"], ensure_ascii=False))


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.0])
def test_both_grammars_share_the_worst_case(grammar, scale):
    assert LarkGrammar().worst_case_tokens(Bounds.scaled(scale)) == grammar.worst_case_tokens(
        Bounds.scaled(scale)
    )


def test_the_admitted_characters_come_from_the_schema():
    lark = LarkGrammar().lark(Bounds())
    assert "\\U0000202E" in lark and "\\U0000FEFF" in lark  # from $defs/hidden_characters
    with pytest.raises(GrammarError, match="character class"):
        LarkGrammar("custom", {"type": "string", "maxLength": 5, "not": {"pattern": "^a+$"}})


def test_min_items_are_read_from_the_answer_schema_alone():
    defs = load_schema()["$defs"]
    expected = {
        key: prop.get("minItems", 0)
        for kind in ("procedure", "refusal")
        for key, prop in defs[kind]["properties"].items()
        if prop.get("type") == "array"
    }
    assert LarkGrammar().min_items == expected  # no context or meta arrays
