"""Prompt format: chat messages from a record, rendered with the tokenizer's own chat template."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from data.schema import context_fields, hidden_characters, is_refusal, output_summary

AssistantFormat = Literal["json", "numbered"]

_RULES = (
    "One imperative action per step, from the current screen; quote UI labels exactly; answer in the "
    "intent's language; never invent apps or screens; refuse unsafe requests."
)


def system_prompt() -> str:
    """The system message: the output contract, derived from data/schema.json, plus the style rules."""
    return (
        "You are stepsmith. Turn the intent and context into a procedure. "
        "Reply with one JSON object and nothing else:\n"
        f"{output_summary()}\n{_RULES}"
    )


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(value: str) -> str:
    """`value` on one prompt line: every character of $defs/hidden_characters in the BMP (controls,
    line and paragraph separators, zero-width and bidi formatting characters) written as an escape
    (\\n, \\t, \\u202e), so that no user text can open a new line, field or turn, or hide one."""

    def escape(match: re.Match) -> str:
        char = match.group()
        if ord(char) > 0xFFFF:  # emoji and other astral characters are visible text
            return char
        return _ESCAPES.get(char) or f"\\u{ord(char):04x}"

    return hidden_characters().sub(escape, value)


def user_message(intent: str, context: dict[str, Any] | None) -> str:
    """The user message: the intent, then each given context field on its own line.

    Every value goes through `one_line`, so the lines are exactly these: a newline in an intent
    cannot fake an `Intent:` or a `- user_role: admin` line.
    """
    lines = [f"Intent: {one_line(intent)}"]
    context = context or {}
    given = [k for k in context_fields() if context.get(k) not in (None, "", [])]
    if not given:
        lines.append("Context: none")
    else:
        lines.append("Context:")
        for key in given:
            value = context[key]
            shown = ", ".join(value) if isinstance(value, list) else value
            lines.append(f"- {key}: {one_line(shown)}")
    return "\n".join(lines)


def output_json(output: dict[str, Any]) -> str:
    """The canonical serialisation of an output, as the model is trained to write it."""
    return json.dumps(output, ensure_ascii=False)


def render_numbered(output: dict[str, Any]) -> str:
    """The numbered-list rendering of an output: steps, then constraints and validation."""
    if is_refusal(output):
        lines = [f"Cannot help with this ({output['category'].replace('_', ' ')}): {output['reason']}"]
        if output.get("alternatives"):
            lines += ["", "Instead:"] + [f"- {a}" for a in output["alternatives"]]
        return "\n".join(lines)
    lines = [f"{i}. {step}" for i, step in enumerate(output["steps"], 1)]
    if output.get("constraints"):
        lines += ["", "Constraints:"] + [f"- {c}" for c in output["constraints"]]
    if output.get("validation"):
        lines += ["", "Check that it worked:"] + [f"- {v}" for v in output["validation"]]
    return "\n".join(lines)


def build_messages(
    record: dict[str, Any], assistant: AssistantFormat | None = "json"
) -> list[dict[str, str]]:
    """System, user and (unless `assistant` is None) assistant messages for one record."""
    messages = [
        {"role": "system", "content": system_prompt()},
        {
            "role": "user",
            "content": user_message(record["input"]["intent"], record["input"].get("context")),
        },
    ]
    if assistant is not None:
        out = record["output"]
        content = output_json(out) if assistant == "json" else render_numbered(out)
        messages.append({"role": "assistant", "content": content})
    return messages


def load_tokenizer(name: str) -> Any:
    """A Hugging Face tokenizer. 'smollm2' reads the one inside the shipped SmolLM2 GGUF."""
    from transformers import AutoTokenizer

    if name == "smollm2":
        from data.embedded import load_gguf_tokenizer, smollm2_gguf

        return load_gguf_tokenizer(smollm2_gguf())
    if Path(name).is_dir() or "/" in name:
        return AutoTokenizer.from_pretrained(name)
    raise ValueError(f"unknown tokenizer {name!r}: use 'smollm2', a local model folder or a hub id")


def chat_text(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """Render messages with the tokenizer's own chat template (never hand-written special tokens)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; "
            "use an instruct model whose tokenizer_config.json or GGUF metadata carries one"
        )
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
