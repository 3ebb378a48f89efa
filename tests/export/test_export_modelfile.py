"""Ollama Modelfile: its TEMPLATE renders what the model's own chat template renders (ChatML,
Llama 3.1, Gemma)."""

from __future__ import annotations

import copy

import pytest

from data.embedded import smollm2_gguf
from data.prompt import chat_text, system_prompt
from export import ExportError
from export.modelfile import check_template, modelfile_text, ollama_template, render
from export.verify import gguf_fields

# Meta's Llama 3.1 chat template without its tool-calling branches (what a plain chat renders through).
LLAMA31 = (
    "{{- bos_token }}"
    '{%- if not date_string is defined %}{%- set date_string = "26 Jul 2024" %}{%- endif %}'
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    '{%- set messages = messages[1:] %}{%- else %}{%- set system_message = "" %}{%- endif %}'
    '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}'
    '{{- "Cutting Knowledge Date: December 2023\\n" }}'
    '{{- "Today Date: " + date_string + "\\n\\n" }}'
    '{{- system_message }}{{- "<|eot_id|>" }}'
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

MESSAGES = [
    {"role": "system", "content": "You are stepsmith."},
    {"role": "user", "content": "Intent: reset my password\nContext: none"},
    {"role": "assistant", "content": '{"schema": "ordered_steps", "steps": ["Tap \\"Forgot\\"."]}'},
    {"role": "user", "content": "Intent: turn on 2FA\nContext: none"},
]


@pytest.fixture(scope="module")
def smollm2():
    """A transformers tokenizer carrying SmolLM2's chat template and special tokens, read from its GGUF.

    Rendering a chat template never touches the vocabulary, so a one-word vocabulary spares the
    half-minute GGUF tokenizer conversion.
    """
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    fields = gguf_fields(smollm2_gguf())
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert [fields[f"tokenizer.ggml.{n}_token_id"] for n in ("unknown", "bos", "eos")] == [0, 1, 2]
    vocab = WordLevel({t: i for i, t in enumerate(specials)}, unk_token=specials[0])
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(vocab),
        unk_token=specials[0],
        bos_token=specials[1],
        eos_token=specials[2],
        chat_template=fields["tokenizer.chat_template"],
    )


def test_chatml_template_renders_like_smollm2(smollm2):
    template, family = ollama_template(smollm2.chat_template)
    assert family.name == "chatml" and "<|im_end|>" in family.stops
    for messages in (MESSAGES[:2], MESSAGES):
        assert render(template, messages) == chat_text(smollm2, messages, add_generation_prompt=True)
    check_template(template, smollm2, add_bos=False, system=system_prompt())


def test_a_template_that_drifts_from_training_is_caught(smollm2):
    template, _ = ollama_template(smollm2.chat_template)
    drifted = template.replace("<|im_end|>\n<|im_start|>assistant", "<|im_end|><|im_start|>assistant")
    with pytest.raises(ExportError, match="would prompt the model differently from training"):
        check_template(drifted, smollm2, add_bos=False, system="You are stepsmith.")


def test_llama31_template_keeps_its_date_preamble_and_leaves_bos_to_llama_cpp(smollm2):
    tokenizer = copy.deepcopy(smollm2)
    tokenizer.chat_template = LLAMA31
    template, family = ollama_template(LLAMA31)
    assert family.name == "llama3"
    assert {"<|eot_id|>", "<|start_header_id|>"} <= set(family.stops)
    want = chat_text(tokenizer, MESSAGES, add_generation_prompt=True)
    assert want.startswith(tokenizer.bos_token)  # the chat template writes BOS; llama.cpp adds its own
    assert render(template, MESSAGES) == want[len(tokenizer.bos_token) :]
    assert "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are stepsmith." in want
    check_template(template, tokenizer, add_bos=True, system="You are stepsmith.")
    with pytest.raises(ExportError):  # a GGUF that does not add BOS would lose it
        check_template(template, tokenizer, add_bos=False, system="You are stepsmith.")


def test_gemma_template_of_the_gemma_base_renders_like_its_modelfile(smollm2):
    from train.base import GEMMA_TEMPLATE

    tokenizer = copy.deepcopy(smollm2)
    tokenizer.chat_template = GEMMA_TEMPLATE
    template, family = ollama_template(GEMMA_TEMPLATE)
    assert family.name == "gemma" and "<end_of_turn>" in family.stops
    want = chat_text(tokenizer, MESSAGES, add_generation_prompt=True)
    assert want.startswith(tokenizer.bos_token + "<start_of_turn>system\nYou are stepsmith.<end_of_turn>\n")
    assert want.endswith(
        "<start_of_turn>user\nIntent: turn on 2FA\nContext: none<end_of_turn>\n<start_of_turn>model\n"
    )
    assert render(template, MESSAGES) == want[len(tokenizer.bos_token) :]
    check_template(template, tokenizer, add_bos=True, system=system_prompt())


def test_unknown_chat_format_is_an_error():
    with pytest.raises(ExportError, match="chatml .* llama3 .* gemma"):
        ollama_template("{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}")


def test_modelfile_points_at_the_gguf_beside_it(smollm2):
    template, family = ollama_template(smollm2.chat_template)
    text = modelfile_text("run-q4_k_m.gguf", template, family, "Be brief.", "<|im_end|>", 4096)
    lines = text.splitlines()
    assert "FROM ./run-q4_k_m.gguf" in lines
    assert 'SYSTEM """Be brief."""' in lines
    assert [line for line in lines if line.startswith("PARAMETER stop")] == [
        'PARAMETER stop "<|im_start|>"',
        'PARAMETER stop "<|im_end|>"',
    ]
    assert text.count('"""') == 4
    with pytest.raises(ExportError, match='SYSTEM contains """'):
        modelfile_text("run-q4_k_m.gguf", template, family, 'say """hi"""', "<|im_end|>", 4096)
