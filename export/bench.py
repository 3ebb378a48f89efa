"""Export benchmark: conversion and quantization times, file sizes, and Q4_K_M decode speed vs transformers.

python -m export.bench --run outputs/<run> [--new-tokens 64 --prompts 3 --threads 2]
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from data.paths import CACHE
from data.settings import option, parse_config, user_errors
from export import ExportError


@dataclass
class BenchConfig:
    """Settings of `python -m export.bench`."""

    run: str = option("", "an exported run folder (outputs/<run>, with merged/ from `python -m export`)")
    quant: list[str] = option(["q4_k_m", "q8_0"], "quantizations to time; decode speed uses the first")
    prompts: int = option(3, "stepsmith prompts decoded by both backends")
    new_tokens: int = option(64, "tokens generated per prompt by both backends (EOS does not stop either)")
    threads: int = option(0, "CPU threads for llama.cpp and torch alike; 0 means all cores")
    converter_dir: str = option("", "as in `python -m export`: offline converter folder or sdist")
    cache_dir: str = option(str(CACHE), "where the extracted converter is kept")


def _llama_cpp_decode(path: Path, prompts: list[list[int]], n: int, threads: int) -> dict[str, float]:
    """Prefill and decode times of greedy generation under llama-cpp-python."""
    from llama_cpp import Llama

    n_ctx = max(len(p) for p in prompts) + n + 8
    llm = Llama(str(path), n_ctx=n_ctx, verbose=False, n_threads=threads, n_threads_batch=threads)
    prefill = decode = 0.0
    for ids in prompts:
        llm.reset()  # no KV-cache reuse of the shared system prompt: transformers gets none either
        start = time.perf_counter()
        tokens = llm.generate(ids, temp=0.0)
        next(tokens)  # the prompt is evaluated and the first token sampled
        first = time.perf_counter()
        for _ in range(n - 1):
            next(tokens)
        prefill += first - start
        decode += time.perf_counter() - first
    llm.close()
    return {"prefill_s": prefill, "decode_s": decode}


def _transformers_decode(merged: Path, prompts: list[list[int]], n: int) -> dict[str, float]:
    """Prefill and decode times of greedy `generate` on the merged model (float32, as CPUs run it)."""
    import torch
    from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

    class Clock(LogitsProcessor):
        """Called once per new token, right after its forward pass: the first call ends the prefill."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def __call__(self, input_ids, scores):
            self.times.append(time.perf_counter())
            return scores

    model = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32).eval()
    prefill = decode = 0.0
    with torch.no_grad():
        for ids in prompts:
            clock = Clock()
            tensor = torch.tensor([ids])
            start = time.perf_counter()
            model.generate(
                tensor,
                attention_mask=torch.ones_like(tensor),
                do_sample=False,
                max_new_tokens=n,
                min_new_tokens=n,
                logits_processor=LogitsProcessorList([clock]),
                pad_token_id=model.generation_config.eos_token_id,
            )
            end = time.perf_counter()
            prefill += clock.times[0] - start
            decode += end - clock.times[0]
    return {"prefill_s": prefill, "decode_s": decode}


def command(config: BenchConfig) -> str:
    """The command line that reproduces these figures (the fields that differ from the defaults)."""
    flags = []
    for f in fields(config):
        value = getattr(config, f.name)
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if value != default:
            shown = " ".join(value) if isinstance(value, list) else value
            flags.append(f"--{f.name.replace('_', '-')} {shown}")
    return " ".join(["python -m export.bench", *flags])


def run(config: BenchConfig) -> dict[str, Any]:
    """Time conversion, quantization and decoding for one exported run; returns the figures."""
    import torch
    from transformers import AutoTokenizer

    from data.prompt import chat_text
    from export import check_quant
    from export.convert import convert, converter, llama_cpp_version
    from export.merge import find_run
    from export.quantize import quantize
    from export.verify import parity_conversations

    run_dir = find_run(config.run)
    merged = run_dir / "merged"
    if not (merged / "config.json").is_file():
        raise ExportError(f"{merged}: not found; export the run first: python -m export --run {run_dir}")
    threads = config.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    quants = [check_quant(q) for q in config.quant]
    work = run_dir / "bench"
    work.mkdir(exist_ok=True)
    try:
        conv_dir, _ = converter(config.converter_dir, Path(config.cache_dir))
        f16 = convert(merged, work / "bench-f16.gguf", conv_dir, work / "convert.log")
        files = {"f16": f16}
        for quant in quants:
            if quant != "f16":
                files[quant] = quantize(Path(f16["path"]), work / f"bench-{quant}.gguf", quant, threads)
        tokenizer = AutoTokenizer.from_pretrained(str(merged))
        texts = [
            chat_text(tokenizer, m, add_generation_prompt=True) for m in parity_conversations(config.prompts)
        ]
        prompts = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
        gguf = _llama_cpp_decode(Path(files[quants[0]]["path"]), prompts, config.new_tokens, threads)
        hf = _transformers_decode(merged, prompts, config.new_tokens)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    decoded = len(prompts) * (config.new_tokens - 1)
    speed = {
        name: {
            **{k: round(v, 2) for k, v in t.items()},
            "decode_tok_s": round(decoded / t["decode_s"], 1),
            "prompt_tok_s": round(sum(map(len, prompts)) / t["prefill_s"], 1),
        }
        for name, t in (("llama_cpp_" + quants[0], gguf), ("transformers_float32", hf))
    }
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip() + f", {os.cpu_count()} CPUs",
        "command": command(config),
        "run": str(run_dir),
        "threads": threads,
        "prompts": len(prompts),
        "prompt_tokens": [len(p) for p in prompts],
        "new_tokens": config.new_tokens,
        "files": {q: {"bytes": f["bytes"], "seconds": f["seconds"]} for q, f in files.items()},
        "decode": speed,
        "decode_ratio": round(
            speed[f"llama_cpp_{quants[0]}"]["decode_tok_s"] / speed["transformers_float32"]["decode_tok_s"], 2
        ),
        "llama_cpp_python": llama_cpp_version(),
    }


def markdown(result: dict[str, Any]) -> str:
    """The export section of docs/benchmarks.md."""
    quant = next(iter(k for k in result["decode"] if k.startswith("llama_cpp_"))).removeprefix("llama_cpp_")
    lines = [
        "## Export",
        "",
        f"{result['date']}, {result['machine']}, {result['threads']} thread(s), llama-cpp-python "
        f"{result['llama_cpp_python']}; `{result['command']}` on `{result['run']}`.",
        "",
        "| file | size (MB) | time (s) |",
        "|---|---:|---:|",
    ]
    for q, f in result["files"].items():
        how = "convert_hf_to_gguf.py" if q == "f16" else "llama_model_quantize"
        lines.append(f"| {q.upper()} ({how}) | {f['bytes'] / 1e6:.1f} | {f['seconds']} |")
    lines += [
        "",
        f"Greedy decoding, {result['prompts']} stepsmith prompts ({min(result['prompt_tokens'])}-"
        f"{max(result['prompt_tokens'])} tokens), {result['new_tokens']} new tokens each:",
        "",
        "| backend | prompt tok/s | decode tok/s |",
        "|---|---:|---:|",
    ]
    for name, row in result["decode"].items():
        shown = (
            f"llama-cpp-python, {quant.upper()} GGUF"
            if name.startswith("llama_cpp_")
            else ("transformers `generate`, merged float32")
        )
        lines.append(f"| {shown} | {row['prompt_tok_s']} | {row['decode_tok_s']} |")
    lines += [
        "",
        f"Decode speed ratio, {quant.upper()} GGUF / transformers: **{result['decode_ratio']}x**.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    with user_errors(ExportError):
        figures = run(parse_config(BenchConfig, sys.argv[1:]))
    from train.bench import write_section

    section = markdown(figures)
    write_section(Path("docs/benchmarks.md"), "export", section)
    print(section)
