"""Merge a run's adapter, convert to GGUF, quantize, verify and write an Ollama Modelfile, offline.

python -m export --run outputs/<run> [--quant q4_k_m q8_0 ...] [--converter-dir DIR_OR_SDIST]
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from data.settings import dump_config, library_versions, parse_config, user_errors
from export import ExportError, gguf_path
from export.config import ExportConfig

STEPS = 6
PACKAGES = ("torch", "transformers", "peft", "safetensors", "llama-cpp-python", "gguf", "sentencepiece")


def step(n: int, text: str) -> None:
    """One progress line per pipeline step."""
    print(f"export: [{n}/{STEPS}] {text}", flush=True)


def versions() -> dict[str, str]:
    """Versions of the libraries an export depends on, plus Python and the machine."""
    return library_versions(PACKAGES)


def trained_system_prompt(train: dict[str, Any]) -> str:
    """The system prompt the run trained with (first training row), else stepsmith's own."""
    from data.prompt import system_prompt

    path = Path(train.get("data_dir", "")) / "train.messages.jsonl"
    if train.get("data_dir") and path.is_file():
        with path.open(encoding="utf-8") as f:
            first = json.loads(f.readline() or "{}")
        messages = first.get("messages") or []
        if messages and messages[0].get("role") == "system":
            return messages[0]["content"]
    return system_prompt()


def write_modelfile(
    run_dir: Path, quant: str, merged: Path, tokenizer: Any, add_bos: bool, train: dict
) -> dict:
    """The Modelfile next to the GGUF, its TEMPLATE checked against the chat template."""
    from transformers import AutoConfig

    from export.modelfile import check_template, modelfile_text, ollama_template

    template, family = ollama_template(tokenizer.chat_template)
    system = trained_system_prompt(train)
    check_template(template, tokenizer, add_bos, system)
    context = getattr(AutoConfig.from_pretrained(str(merged)), "max_position_embeddings", 4096)
    text = modelfile_text(
        gguf_path(run_dir, quant).name, template, family, system, tokenizer.eos_token, min(context, 4096)
    )
    (run_dir / "Modelfile").write_text(text, encoding="utf-8")
    return {"path": str(run_dir / "Modelfile"), "family": family.name, "gguf": gguf_path(run_dir, quant).name}


def convert_and_quantize(config: ExportConfig, run_dir: Path, merged: Path) -> tuple[dict, dict]:
    """Steps 2 and 3: the F16 GGUF from merged/, then each requested quantization of it."""
    from export.convert import convert, converter, llama_cpp_version
    from export.quantize import quantize

    f16 = gguf_path(run_dir, "f16")
    step(2, f"convert {merged} -> {f16.name} with llama.cpp's convert_hf_to_gguf.py")
    conv_dir, source = converter(config.converter_dir, Path(config.cache_dir))
    source["llama_cpp_python"] = llama_cpp_version()
    files = {"f16": convert(merged, f16, conv_dir, run_dir / "convert.log")}
    todo = [q for q in config.quant if q != "f16"]
    step(3, f"quantize to {', '.join(todo) or 'nothing (F16 only)'} with llama_model_quantize")
    for quant in todo:
        files[quant] = quantize(f16, gguf_path(run_dir, quant), quant, config.threads)
    for done in files.values():
        print(
            f"export: wrote {done['path']} ({done['bytes'] / 1e6:.0f} MB) in {done['seconds']} s", flush=True
        )
    return files, source


def verify(config: ExportConfig, files: dict, merged: Path, tokenizer: Any) -> tuple[dict, dict]:
    """Step 4: every GGUF's metadata, then greedy parity with the merged model; raises on failure."""
    from transformers import AutoConfig

    from export.verify import check_agreement, check_metadata, parity

    step(4, "verify: GGUF metadata vs the merged tokenizer, then greedy parity vs the merged model")
    architecture = (AutoConfig.from_pretrained(str(merged)).architectures or ["?"])[0]
    meta = {q: check_metadata(Path(f["path"]), merged, tokenizer, architecture) for q, f in files.items()}
    print(f"export: metadata ok in {len(meta)} file(s): architecture, vocabulary, chat template, BOS/EOS ids")
    if not config.parity_prompts:
        print("export: parity check skipped (--parity-prompts 0)")
        return meta, {}
    paths = {q: Path(f["path"]) for q, f in files.items()}
    args = (config.parity_prompts, config.parity_tokens, config.parity_dtype, config.threads)
    agreement = parity(paths, merged, tokenizer, *args)
    for quant, row in agreement["files"].items():
        print(
            f"export: parity {quant}: first {row['tokens']} tokens {row['first_n_agreement']:.0%} "
            f"(identical on {row['identical_prompts']}/{row['prompts']} prompts), "
            f"teacher-forced top-1 {row['teacher_forced_agreement']:.0%}",
            flush=True,
        )
    check_agreement(agreement["files"], config.min_agreement)
    return meta, agreement


def base_with_tokenizer(base: Path, merged: Path) -> Path:
    """A folder of the base's weights (linked) with merged/'s tokenizer files (copied).

    The merge repairs the tokenizer (merge.repair_byte_level); a base converted with the
    unrepaired one gets a SentencePiece vocabulary without byte tokens, on which llama.cpp
    aborts at the first decode (std::out_of_range), so the base is converted with the repaired one.
    """
    from data.paths import base_gguf

    stage = base_gguf(str(base)).parent / f".stage-{base.name}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    tokenizer_files = {p.name for p in merged.iterdir() if p.name.startswith(("tokenizer", "special_tokens"))}
    for path in base.iterdir():
        if path.is_file() and path.name not in tokenizer_files:
            (stage / path.name).symlink_to(path.resolve())
    for name in tokenizer_files:
        shutil.copy(merged / name, stage / name)
    return stage


def export_lora(config: ExportConfig, run_dir: Path, base: str, merged: Path, tokenizer: Any) -> dict:
    """Step 4b: the adapter as a GGUF LoRA, the base as a GGUF (built once), and their parity.

    Base + LoRA is held to the merged model at the same threshold as the merged export, so a
    served adapter answers as the merged model would.
    """
    from data.paths import base_gguf, lora_file
    from export.convert import convert, convert_lora, converter
    from export.quantize import quantize
    from export.verify import check_agreement, check_metadata, parity

    quant = config.quant[0]
    lora = lora_file(run_dir)
    step(4, f"LoRA: {run_dir / 'adapter'} -> {lora.name} with llama.cpp's convert_lora_to_gguf.py")
    conv_dir, _ = converter(config.converter_dir, Path(config.cache_dir))
    files = {
        "lora": convert_lora(run_dir / "adapter", Path(base), lora, conv_dir, run_dir / "convert_lora.log")
    }
    base_file = base_gguf(base, quant)
    if base_file.is_file():
        print(f"export: base GGUF {base_file} exists; reused", flush=True)
    else:
        f16 = base_gguf(base, "f16")
        stage = base_with_tokenizer(Path(base), merged)
        convert(stage, f16, conv_dir, base_file.parent / "convert.log")
        shutil.rmtree(stage)
        if quant != "f16":
            quantize(f16, base_file, quant, config.threads)
            f16.unlink()
    from transformers import AutoConfig

    architecture = (AutoConfig.from_pretrained(str(merged)).architectures or ["?"])[0]
    files["base_metadata"] = check_metadata(base_file, merged, tokenizer, architecture)
    files["base"] = {"path": str(base_file), "bytes": base_file.stat().st_size}
    if not config.parity_prompts:
        print("export: LoRA parity check skipped (--parity-prompts 0)")
        return {"files": files, "parity": {}}
    key = f"base-{quant}+lora"
    args = (config.parity_prompts, config.parity_tokens, config.parity_dtype, config.threads)
    agreement = parity({key: base_file}, merged, tokenizer, *args, loras={key: lora})
    row = agreement["files"][key]
    print(
        f"export: parity {key}: first {row['tokens']} tokens {row['first_n_agreement']:.0%}, "
        f"teacher-forced top-1 {row['teacher_forced_agreement']:.0%}",
        flush=True,
    )
    check_agreement(agreement["files"], config.min_agreement)
    return {"files": files, "parity": agreement}


def main(config: ExportConfig) -> int:
    """Run the six steps; returns the exit code."""
    from export.merge import base_reference, find_run, merge, read_train_config, resolve
    from export.verify import probe_text

    start = time.perf_counter()
    run_dir = find_run(config.run)
    train = read_train_config(run_dir)
    name, source = base_reference(run_dir, train, config.base_model)
    base = resolve(name, source)
    merged = run_dir / "merged"
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)

    step(1, f"merge {run_dir / 'adapter'} into {base} at 16-bit -> {merged}")
    trained_on = train.get("base_model") or name
    merge_info = merge(run_dir, base, source, trained_on, merged, config.quant, probe_text())
    print(f"export: merged {merge_info['parameters']:,} parameters ({merge_info['dtype']})", flush=True)
    files, conv_source = convert_and_quantize(config, run_dir, merged)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(merged))
    meta, agreement = verify(config, files, merged, tokenizer)

    if config.lora:
        lora_info = export_lora(config, run_dir, base, merged, tokenizer)

    step(
        5, f"Modelfile for Ollama -> {run_dir / 'Modelfile'}, FROM {gguf_path(run_dir, config.quant[0]).name}"
    )
    add_bos = bool(meta["f16"].get("add_bos_token"))
    modelfile = write_modelfile(run_dir, config.quant[0], merged, tokenizer, add_bos, train)

    step(6, f"summary -> {run_dir / 'export_summary.json'}")
    summary = {
        "run": str(run_dir),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.perf_counter() - start, 1),
        "merge": merge_info,
        "converter": conv_source,
        "files": files,
        "metadata": meta,
        "parity": agreement,
        "min_agreement": config.min_agreement,
        "modelfile": modelfile,
        "lora": lora_info if config.lora else None,
        "config": dataclasses.asdict(config),
        "versions": versions(),
    }
    dump_config(config, run_dir / "export_config.yaml")
    text = json.dumps(summary, indent=2, default=str) + "\n"
    (run_dir / "export_summary.json").write_text(text, encoding="utf-8")
    sizes = ", ".join(f"{q} {f['bytes'] / 1e6:.0f} MB" for q, f in files.items())
    print(f"export: done in {summary['seconds']} s: {sizes}; Ollama: see {run_dir / 'Modelfile'}", flush=True)
    return 0


def multi_value(argv: list[str], key: str) -> list[str]:
    """`--key a b c` -> `--key a,b,c`, so a list option takes space-separated values too."""
    out, i = [], 0
    while i < len(argv):
        out.append(argv[i])
        if argv[i] == key:
            values = []
            while i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                values.append(argv[i + 1])
                i += 1
            out.append(",".join(values))
        i += 1
    return out


def parse_args(argv: list[str] | None = None) -> ExportConfig:
    """Config from defaults, --config and flags; --quant takes several values."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return parse_config(ExportConfig, multi_value(argv, "--quant"))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with user_errors(ExportError):
        sys.exit(main(parse_args()))
