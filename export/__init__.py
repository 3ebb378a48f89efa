"""Merge, GGUF conversion, quantization and verification, offline (python -m export)."""

from __future__ import annotations

from pathlib import Path

from data.paths import DEFAULT_QUANT, gguf_file, gguf_name
from data.settings import UserError

# The quantizations `--quant` accepts: name -> llama.cpp file type (an attribute of llama_cpp).
# F16 is the converter's own output; the others come from llama_model_quantize.
QUANTS = {
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
}


class ExportError(UserError, RuntimeError):
    """An export problem a user can fix; the message says what, where and how."""


def check_quant(name: str) -> str:
    """The canonical (lowercase) quant name, or an error listing the supported ones."""
    quant = name.strip().lower()
    if quant not in QUANTS:
        raise ExportError(f"--quant: {name!r} is not supported; supported: {', '.join(QUANTS)}")
    return quant


def gguf_path(run_dir: Path, quant: str) -> Path:
    """Where the export of `run_dir` at `quant` lives: outputs/<run>/<run>-<quant>.gguf."""
    return gguf_file(run_dir, check_quant(quant))


def find_gguf(run_dir: Path, quant: str = DEFAULT_QUANT) -> Path | None:
    """The latest GGUF exported from a run at `quant`, or None when there is none.

    The canonical name comes first; a run folder that was renamed after export still has its
    GGUF under the old name, so the newest `*-<quant>.gguf` is the fallback.
    """
    run_dir = Path(run_dir)
    path = gguf_path(run_dir, quant)
    if path.is_file():
        return path
    others = [p for p in run_dir.glob(gguf_name("*", check_quant(quant))) if p.is_file()]
    return max(others, key=lambda p: p.stat().st_mtime) if others else None
