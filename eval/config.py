"""Typed configs of the eval stage: one per command (evaluate, human-sheet, human-score)."""

from __future__ import annotations

from dataclasses import dataclass

from data.paths import DEFAULT_RUN, EVAL, run_dir
from data.settings import ConfigError, option
from eval.systems import ABLATIONS

DEFAULT_RUN_DIR = str(run_dir(DEFAULT_RUN))


@dataclass
class EvalConfig:
    """Settings of `python -m eval`."""

    model: str = option(
        DEFAULT_RUN_DIR,
        "system under test: a run folder (its q4_k_m GGUF), a .gguf file, base (SmolLM2 zero-shot), "
        "template or gold",
    )
    systems: list[str] = option(
        ["base", "template", "gold"], "baselines evaluated beside --model, same specs; comma-separated"
    )
    ablate: list[str] = option(
        [], f"engine features to turn off, one extra system each for --model: {', '.join(ABLATIONS)}"
    )
    adapter: list[str] = option(
        [],
        "NAME=FILE GGUF LoRAs (python -m export --lora), named after domains; adds the per-domain system: "
        "--adapter-base with each example answered by its domain's adapter (repeat the flag)",
    )
    adapter_base: str = option("", "the base GGUF the --adapter LoRAs apply to (outputs/base/gguf/...)")
    test_file: str = option("data/processed/test.jsonl", "JSONL test file in the record format")
    limit: int = option(0, "evaluate an evenly spaced subset of this many examples; 0 means all")
    name: str = option("", "report name: outputs go to <out-root>/<name>/; empty derives it from --model")
    out_root: str = option(str(EVAL), "folder that holds one subfolder per report")
    # 0 keeps serving's budget (7168 tokens): the grammar is bounded by it (run/constraint.py), and
    # a smaller one also shrinks the longest step the grammar admits (at 512, two steps of 20
    # characters), so only a budget as large as serving's measures what serving answers.
    max_tokens: int = option(0, "token budget per draft for model systems; 0 keeps serving's (7168)")
    repeat_penalty: float = option(0.0, "llama.cpp repetition penalty for model systems; 0 keeps serving's")
    temperature: float = option(0.0, "sampling temperature for model systems; 0 keeps serving's greedy")
    selfcheck_rounds: int = option(2, "K: self-check revisions after the first draft (serving's default)")
    threads: int = option(0, "CPU threads for llama.cpp; 0 takes one per physical core (serving's)")
    # 0 keeps serving's 120 s: without the grammar a model that never writes end-of-sequence would
    # otherwise decode the whole budget (10 minutes for 7168 tokens on 2 cores).
    timeout_s: float = option(0.0, "per-example generation limit in seconds; 0 keeps serving's (120)")
    max_steps: int = option(12, "N of the style rule 'at most N steps' in structure validity")
    semantic: bool = option(True, "compute BERTScore and constraint satisfaction (loads MiniLM)")
    bootstrap: int = option(1000, "bootstrap resamples for the 95% confidence intervals")
    seed: int = option(13, "seed for generation, the bootstrap and every other random choice")
    resume: bool = option(True, "reuse cached predictions of an earlier, interrupted run of the same name")

    def __post_init__(self) -> None:
        if bool(self.adapter) != bool(self.adapter_base):
            raise ConfigError(
                "--adapter and --adapter-base go together: the LoRAs and the base GGUF they apply to"
            )
        unknown = [a for a in self.ablate if a not in ABLATIONS]
        if unknown:
            raise ConfigError(f"--ablate: {unknown[0]!r} is not one of {', '.join(ABLATIONS)}")
        if (
            self.limit < 0
            or self.bootstrap < 100
            or self.max_tokens < 0
            or self.timeout_s < 0
            or self.temperature < 0
        ):
            raise ConfigError(
                "--limit, --max-tokens, --timeout-s and --temperature must be >= 0, and --bootstrap >= 100"
            )

    def engine_settings(self) -> dict:
        """The run/ EngineConfig fields an eval sets; the others (and zeros here) keep serving's defaults."""
        settings = {"selfcheck_rounds": self.selfcheck_rounds, "threads": self.threads, "seed": self.seed}
        settings["max_steps"] = self.max_steps
        if self.max_tokens:
            settings["max_tokens"] = self.max_tokens
        if self.timeout_s:
            settings["timeout_s"] = self.timeout_s
        if self.temperature:
            settings["temperature"] = self.temperature
        if self.repeat_penalty:
            settings["repeat_penalty"] = self.repeat_penalty
        return settings


@dataclass
class HumanSheetConfig:
    """Settings of `python -m eval human-sheet`: a blinded rating sheet from an eval's predictions."""

    predictions: str = option("", "predictions.jsonl of an eval run (outputs/eval/<name>/predictions.jsonl)")
    systems: list[str] = option([], "the two systems to compare, e.g. smollm2-135m-cpu,base")
    limit: int = option(0, "rate an evenly spaced subset of this many examples; 0 means all")
    out_dir: str = option("", "where sheet.csv, sheet.html and key.json go; empty: human/ beside predictions")
    seed: int = option(13, "seed of the blinded A/B order")

    def __post_init__(self) -> None:
        if not self.predictions:
            raise ConfigError("--predictions: give the predictions.jsonl of an eval run")
        if len(self.systems) != 2 or self.systems[0] == self.systems[1]:
            raise ConfigError("--systems: name two different systems of that run, e.g. --systems model,base")


@dataclass
class HumanScoreConfig:
    """Settings of `python -m eval human-score`: scores from filled sheets."""

    sheets: list[str] = option([], "filled sheet.csv files, one per rater (bare arguments)")
    key: str = option("", "key.json written with the sheet; empty: key.json beside the first sheet")
    out_dir: str = option("", "where human_scores.json and human_scores.md go; empty: beside the key")
    bootstrap: int = option(1000, "bootstrap resamples for the 95% confidence intervals")
    seed: int = option(13, "seed of the bootstrap")

    def __post_init__(self) -> None:
        if not self.sheets:
            raise ConfigError("give the filled sheets: python -m eval human-score rater1.csv rater2.csv")
