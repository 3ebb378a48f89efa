"""Ollama Modelfile: the chat template and stop tokens of the model's own chat format.

The TEMPLATE is written for the chat family the tokenizer's template belongs to, then rendered
here (with a small evaluator for the Go-template subset it uses) and compared with the tokenizer's
own rendering, so a Modelfile that would prompt the model differently from training is caught.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export import ExportError


@dataclass(frozen=True)
class Family:
    """How one chat format wraps the system prompt, a user turn and an assistant turn."""

    name: str
    marker: str  # a string only this family's chat templates contain
    system: str
    user: str  # the user turn, then the header that opens the assistant's reply
    assistant: str
    stops: tuple[str, ...]


FAMILIES = (
    Family(
        name="chatml",  # SmolLM2, Qwen2.5 and other <|im_start|> models
        marker="<|im_start|>",
        system="<|im_start|>system\n{{ .System }}<|im_end|>\n",
        user="<|im_start|>user\n{{ .Content }}<|im_end|>\n<|im_start|>assistant\n",
        assistant="{{ .Content }}<|im_end|>\n",
        stops=("<|im_start|>", "<|im_end|>"),
    ),
    Family(
        name="llama3",  # Llama 3, 3.1, 3.2
        marker="<|start_header_id|>",
        system="<|start_header_id|>system<|end_header_id|>\n\n{preamble}{{ .System }}<|eot_id|>",
        user=(
            "<|start_header_id|>user<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n"
        ),
        assistant="{{ .Content }}<|eot_id|>",
        stops=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"),
    ),
    Family(
        name="gemma",  # Gemma 3 270M as trained here (train/base.py GEMMA_TEMPLATE: a system turn)
        marker="<start_of_turn>",
        system="<start_of_turn>system\n{{ .System }}<end_of_turn>\n",
        user="<start_of_turn>user\n{{ .Content }}<end_of_turn>\n<start_of_turn>model\n",
        assistant="{{ .Content }}<end_of_turn>\n",
        stops=("<start_of_turn>", "<end_of_turn>"),
    ),
)
# Llama 3.1's template opens every system turn with these lines (its date_string default included).
LLAMA31_PREAMBLE = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"


def family_of(chat_template: str) -> Family:
    """The chat family of a tokenizer's chat template, or an error naming the supported ones."""
    for family in FAMILIES:
        if family.marker in chat_template:
            return family
    names = ", ".join(f"{f.name} ({f.marker})" for f in FAMILIES)
    raise ExportError(
        f"the model's chat template is not one the Modelfile writer knows ({names}); the GGUFs are fine, "
        "write the Modelfile's TEMPLATE by hand"
    )


def ollama_template(chat_template: str) -> tuple[str, Family]:
    """The Go TEMPLATE for Ollama, for the chat family of `chat_template`."""
    family = family_of(chat_template)
    preamble = LLAMA31_PREAMBLE if "Cutting Knowledge Date" in chat_template else ""
    system = family.system.replace("{preamble}", preamble)
    template = (
        f"{{{{ if .System }}}}{system}{{{{ end }}}}"
        f'{{{{ range .Messages }}}}{{{{ if eq .Role "user" }}}}{family.user}'
        f'{{{{ else if eq .Role "assistant" }}}}{family.assistant}{{{{ end }}}}{{{{ end }}}}'
    )
    return template, family


_TAG = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)


def _tokens(template: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    for hit in _TAG.finditer(template):
        if hit.start() > pos:
            out.append(("text", template[pos : hit.start()]))
        out.append(("tag", hit.group(1)))
        pos = hit.end()
    if pos < len(template):
        out.append(("text", template[pos:]))
    return out


def _parse(tokens: list[tuple[str, str]], i: int) -> tuple[list[Any], int]:
    nodes: list[Any] = []
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "text":
            nodes.append(("text", value))
            i += 1
        elif value == "end" or value.startswith("else"):
            return nodes, i
        elif value.startswith(("if ", "range ")):
            body, i = _parse(tokens, i + 1)
            node = [value.split(" ", 1)[0], value.split(" ", 1)[1], body, []]
            nodes.append(node)
            while tokens[i][1].startswith("else if "):  # a chain shares the one {{ end }}
                branch = ["if", tokens[i][1].removeprefix("else if "), [], []]
                branch[2], i = _parse(tokens, i + 1)
                node[3], node = [branch], branch
            if tokens[i][1] == "else":
                node[3], i = _parse(tokens, i + 1)
            i += 1  # {{ end }}
        else:
            nodes.append(("var", value))
            i += 1
    return nodes, i


def _test(cond: str, scope: dict[str, Any]) -> bool:
    if cond.startswith("."):
        return bool(scope.get(cond[1:]))
    hit = re.fullmatch(r'eq \.(\w+) "([^"]*)"', cond)
    if not hit:
        raise ValueError(f"unsupported template condition {cond!r}")
    return scope.get(hit.group(1)) == hit.group(2)


def _eval(nodes: list[Any], scope: dict[str, Any]) -> str:
    out = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "var":
            out.append(str(scope.get(node[1].removeprefix("."), "")))
        elif node[0] == "if":
            out.append(_eval(node[2] if _test(node[1], scope) else node[3], scope))
        else:  # range over .Messages
            for item in scope.get(node[1].removeprefix("."), []):
                out.append(_eval(node[2], {**scope, "Role": item["role"], "Content": item["content"]}))
    return "".join(out)


def render(template: str, messages: list[dict[str, str]]) -> str:
    """What Ollama feeds the model for `messages` (system first), for the subset of Go templates used here."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    nodes, _ = _parse(_tokens(template), 0)
    return _eval(nodes, {"System": system, "Messages": [m for m in messages if m["role"] != "system"]})


def check_template(template: str, tokenizer: Any, add_bos: bool, system: str) -> dict[str, Any]:
    """Ollama's prompt must be the tokenizer's chat template's, less the BOS llama.cpp adds itself."""
    from data.prompt import chat_text

    turns = [
        {"role": "system", "content": system},
        {"role": "user", "content": "Intent: reset my password\nContext: none"},
        {"role": "assistant", "content": '{"schema": "ordered_steps"}'},
        {"role": "user", "content": "Intent: and in French?\nContext: none"},
    ]
    for messages in (turns[:2], turns):
        want = chat_text(tokenizer, messages, add_generation_prompt=True)
        bos = tokenizer.bos_token or ""
        if add_bos and bos and want.startswith(bos):
            want = want[len(bos) :]
        have = render(template, messages)
        if have != want:
            i = next(
                (k for k, (a, b) in enumerate(zip(have, want, strict=False)) if a != b),
                min(len(have), len(want)),
            )
            raise ExportError(
                f"Modelfile TEMPLATE renders {have[i : i + 30]!r} where the chat template has "
                f"{want[i : i + 30]!r} (character {i}); the Modelfile would prompt the model differently "
                "from training"
            )
    return {"turns_checked": len(turns)}


def modelfile_text(gguf_name: str, template: str, family: Family, system: str, eos: str, num_ctx: int) -> str:
    """The Modelfile: FROM the GGUF beside it, TEMPLATE, SYSTEM and the family's stop tokens."""
    for name, text in (("TEMPLATE", template), ("SYSTEM", system)):
        if '"""' in text:
            raise ExportError(f'the Modelfile {name} contains """, which Ollama cannot quote; remove it')
    stops = list(dict.fromkeys([*family.stops, eos]))
    lines = [
        f"# ollama create {Path(gguf_name).stem} -f Modelfile   (then: ollama run {Path(gguf_name).stem})",
        f"# Written by python -m export: chat family {family.name}, checked against the chat template.",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{template}"""',
        f'SYSTEM """{system}"""',
        *[f'PARAMETER stop "{s}"' for s in stops],
        # Holds the stepsmith system prompt (~400 tokens) and the longest reply; Ollama's default
        # context (2048 in older releases) could cut the system prompt off.
        f"PARAMETER num_ctx {num_ctx}",
    ]
    return "\n".join(lines) + "\n"
