"""Quantize the F16 GGUF with llama.cpp's own quantizer (llama_cpp.llama_model_quantize)."""

from __future__ import annotations

import ctypes
import re
import shutil
import time
from pathlib import Path
from typing import Any

from export import QUANTS, ExportError

# Upper bounds of bits per weight, from the file sizes of small models: their embedding and
# output tensors stay at Q6_K/Q8_0, which lifts Q4_K_M from its nominal ~4.9 bits to ~6.5.
BITS_PER_WEIGHT = {"q4_k_m": 6.5, "q5_k_m": 7.0, "q8_0": 8.5, "f16": 16.0}
# llama.cpp logs one line per tensor while quantizing: "[  12/ 272] blk.1.attn_k.weight - ..."
_TENSOR_LINE = re.compile(rb"\[\s*(\d+)/\s*(\d+)\]")


def export_bytes(params: int, quants: list[str]) -> int:
    """Bytes an export writes: merged/ and the F16 GGUF at 2 bytes a weight, plus each quant."""
    extra = sum(BITS_PER_WEIGHT[q] / 8 for q in quants if q != "f16")
    return int(params * (2 + 2 + extra) * 1.05)  # 5% for metadata, tokenizer and the .partial rename


def check_disk(folder: Path, needed: int) -> None:
    """Fail before writing anything when `folder`'s disk cannot hold `needed` bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise ExportError(
            f"{folder}: not enough disk space: the export needs about {needed / 1e9:.2f} GB (merged/, the "
            f"F16 GGUF and the quantized files) and {free / 1e9:.2f} GB is free; free some space, or "
            "ask for fewer --quant"
        )


def quantize(f16: Path, out: Path, quant: str, threads: int) -> dict[str, Any]:
    """Write `out` at `quant` from the F16 GGUF, with a per-tensor progress bar; returns its summary."""
    import llama_cpp
    import llama_cpp._logger as llama_logger
    from tqdm import tqdm

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTS[quant])
    params.nthread = threads
    bar = tqdm(desc=f"quantize {quant}", unit="tensor", disable=None)
    log: list[str] = []

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        log.append(text.decode("utf-8", "replace"))
        hit = _TENSOR_LINE.search(text)
        if hit:
            bar.total = int(hit.group(2))
            bar.n = int(hit.group(1))
            bar.refresh()

    partial = out.with_name(out.name + ".partial")
    start = time.perf_counter()
    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))
    try:
        code = llama_cpp.llama_model_quantize(str(f16).encode(), str(partial).encode(), ctypes.byref(params))
    finally:
        llama_cpp.llama_log_set(llama_logger.llama_log_callback, ctypes.c_void_p(0))
        bar.close()
    if code != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        tail = " | ".join(line.strip() for line in "".join(log).splitlines()[-3:])
        raise ExportError(f"llama_model_quantize to {quant} failed (code {code}) on {f16}: {tail}")
    partial.replace(out)
    return {"path": str(out), "bytes": out.stat().st_size, "seconds": round(time.perf_counter() - start, 1)}
