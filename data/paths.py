"""Where artifacts live: the outputs root, run folders, GGUF names, eval reports and pipeline state.

Every stage asks this module for its paths instead of spelling `outputs/...` itself, so the
layout (see STYLE.md, Outputs) changes in one place. It sits in data/, the lowest layer, because
every stage imports data/ already; it imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path

OUTPUTS = Path("outputs")  # relative: commands run from the repository root; ignored by git
DEFAULT_RUN = "smollm2-135m-cpu"  # the run of configs/smollm2-135m-cpu.yaml, which `just demo` builds
DEFAULT_QUANT = "q4_k_m"  # the quantization that is served, evaluated and written first
EVAL = OUTPUTS / "eval"  # one subfolder per eval report
PIPELINE = OUTPUTS / ".pipeline"  # the pipeline's stamps, durations and per-stage logs
CACHE = OUTPUTS / ".cache"  # build products kept between runs (the extracted GGUF converter)


def run_dir(run: str, domain: str = "", root: Path | str = OUTPUTS) -> Path:
    """outputs/<run>/, or outputs/<run>-<domain>/ for a domain adapter."""
    return Path(root) / (f"{run}-{domain}" if domain else run)


def gguf_name(run: str, quant: str = DEFAULT_QUANT) -> str:
    """The file name of a run's GGUF at `quant`: <run>-<quant>.gguf."""
    return f"{run}-{quant}.gguf"


def gguf_file(folder: Path | str, quant: str = DEFAULT_QUANT) -> Path:
    """A run folder's GGUF at `quant`, named after the folder: outputs/<run>/<run>-<quant>.gguf."""
    return Path(folder) / gguf_name(Path(folder).name, quant)


def eval_dir(name: str, root: Path | str = EVAL) -> Path:
    """The folder of one eval report: outputs/eval/<name>/."""
    return Path(root) / name


def base_gguf(base: str, quant: str = DEFAULT_QUANT) -> Path:
    """The GGUF of a 16-bit base model (named after its folder), that LoRA GGUFs apply to."""
    return OUTPUTS / "base" / "gguf" / gguf_name(Path(base).name, quant)


def lora_file(folder: Path | str) -> Path:
    """A run folder's adapter as a GGUF LoRA: outputs/<run>/<run>-lora-f16.gguf."""
    return Path(folder) / f"{Path(folder).name}-lora-f16.gguf"
