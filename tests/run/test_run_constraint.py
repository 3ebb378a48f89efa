"""The decoding grammar: derived from data/schema.json, bounded, and accepted by llama.cpp."""

from __future__ import annotations

import json

import pytest

from data.schema import definition, load_schema, output_fields, validate_output
from run.constraint import (
    CHAR_BYTES,
    Bounds,
    GrammarError,
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
