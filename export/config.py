"""ExportConfig: every knob of `python -m export`, with a default and a help string."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from data.paths import CACHE, DEFAULT_RUN
from data.settings import ConfigError, option
from export import DEFAULT_QUANT, ExportError, check_quant


@dataclass
class ExportConfig:
    """Settings of `python -m export`."""

    # `just train` then `just export` works with no flags: both default to the same run.
    run: str = option(
        DEFAULT_RUN, "run folder written by `python -m train` (outputs/<run>), or just its name"
    )
    quant: list[str] = option(
        [DEFAULT_QUANT],
        "GGUF quantizations to write besides F16: q4_k_m, q5_k_m, q8_0, f16 (several: --quant q4_k_m q8_0); "
        "the Modelfile uses the first",
    )
    base_model: str = option(
        "", "16-bit base to merge into; empty takes base_model_16bit, else base_model, from the run's config"
    )
    converter_dir: str = option(
        "",
        "llama.cpp's converter for offline use: an extracted vendor/llama.cpp folder or the "
        "llama-cpp-python sdist (.tar.gz); empty fetches the sdist of the installed version with pip",
    )
    cache_dir: str = option(str(CACHE), "where the extracted converter is kept between exports")
    parity_prompts: int = option(3, "prompts in the greedy parity check (GGUF vs merged model); 0 skips it")
    parity_tokens: int = option(16, "new tokens compared per prompt in the parity check")
    # 0.75 because a sound export agrees on nearly every token under teacher forcing (F16 and Q8_0
    # on all of them, Q4_K_M on ~0.9 on SmolLM2-135M), while a broken one (wrong tokenizer,
    # scrambled weights) agrees on almost none.
    min_agreement: float = option(
        0.75,
        "fail when a GGUF's teacher-forced top-1 agreement with the merged model falls below this",
    )
    parity_dtype: Literal["float32", "bfloat16"] = option(
        "float32", "dtype of the merged reference model in the parity check; bfloat16 halves its memory"
    )
    lora: bool = option(
        False,
        "also write the adapter as a GGUF LoRA (<run>-lora-f16.gguf) and the base as a GGUF "
        "(outputs/base/gguf/), and check base + LoRA against the merged model; "
        "`python -m run.serve --adapter NAME=FILE` serves it",
    )
    threads: int = option(
        0, "CPU threads for torch, quantization and llama.cpp; 0 keeps each library's default"
    )

    def __post_init__(self) -> None:
        try:
            self.quant = list(dict.fromkeys(check_quant(q) for q in self.quant))
        except ExportError as e:
            raise ConfigError(str(e)) from None
        if not self.quant:
            raise ConfigError(f"--quant: give at least one quantization (default {DEFAULT_QUANT})")
        if self.parity_prompts < 0 or self.parity_tokens < 1:
            raise ConfigError("--parity-prompts must be >= 0 and --parity-tokens >= 1")
