"""Merge a run's LoRA adapter into its 16-bit base and save an HF safetensors folder (merged/)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from data import paths
from export import ExportError


def find_run(name: str) -> Path:
    """The run folder for `--run`: a path, or a name under outputs/; it must hold adapter/."""
    if not name:
        raise ExportError("--run is required: pass the folder of a trained run, e.g. --run outputs/<run>")
    run_dir = Path(name)
    if not run_dir.is_dir() and paths.run_dir(name).is_dir():
        run_dir = paths.run_dir(name)
    if not run_dir.is_dir():
        found = sorted(p.parent.name for p in paths.OUTPUTS.glob("*/adapter/adapter_config.json"))
        hint = f"runs with an adapter: {', '.join(found)}" if found else "train one first with `just train`"
        raise ExportError(f"{name}: run folder not found; pass --run outputs/<run> ({hint})")
    if not (run_dir / "adapter" / "adapter_config.json").is_file():
        raise ExportError(
            f"{run_dir}/adapter/adapter_config.json: not found; `python -m train` writes adapter/ when "
            "training finishes, so finish (or rerun) the training of this run first"
        )
    return run_dir


def read_train_config(run_dir: Path) -> dict[str, Any]:
    """The run's resolved TrainConfig (config.yaml); {} for an adapter trained elsewhere."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise ExportError(f"{path}: expected a mapping of key: value; rerun `python -m train`")
    return loaded


def base_reference(run_dir: Path, train: dict[str, Any], override: str) -> tuple[str, str]:
    """(what to merge into, where that choice came from).

    A 4-bit run names its 16-bit weights in base_model_16bit: merging into 4-bit weights would
    round the adapter's update away, so a run trained in 4-bit never falls back to them silently.
    """
    if override:
        return override, "--base-model"
    if train.get("base_model_16bit"):
        return train["base_model_16bit"], f"{run_dir}/config.yaml: base_model_16bit"
    if train.get("base_model"):
        return train["base_model"], f"{run_dir}/config.yaml: base_model"
    adapter_cfg = json.loads((run_dir / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
    if adapter_cfg.get("base_model_name_or_path"):
        return adapter_cfg["base_model_name_or_path"], f"{run_dir}/adapter/adapter_config.json"
    raise ExportError(f"{run_dir}: no config.yaml and no base in adapter_config.json; pass --base-model")


def resolve(name: str, source: str) -> str:
    """A loadable reference for `name`, as training resolved it (embedded SmolLM2, folder or hub id)."""
    from train.base import BaseModelError, resolve_base

    try:
        return resolve_base(name)
    except BaseModelError as e:
        raise ExportError(f"{source}: {e}") from None


def check_16bit(model_config: Any, base: str, source: str) -> None:
    """Refuse a base stored in 4-bit (or 8-bit): the merge must happen at 16-bit."""
    quant = getattr(model_config, "quantization_config", None)
    if quant:
        method = quant.get("quant_method", "?") if isinstance(quant, dict) else type(quant).__name__
        raise ExportError(
            f"{source}: base {base!r} is stored quantized ({method}); merging into quantized weights "
            "loses the adapter. Set base_model_16bit in the run's config.yaml or pass --base-model with "
            "the 16-bit weights of the same model"
        )


def merge_dtype(model_config: Any) -> Any:
    """bfloat16 for a bfloat16 base (its range), else float16, the GGUF's own 16-bit type."""
    import torch

    dtype = getattr(model_config, "dtype", None) or getattr(model_config, "torch_dtype", None)
    return torch.bfloat16 if str(dtype).endswith("bfloat16") else torch.float16


def check_adapter_fits(model: Any, adapter_dir: Path, base: str, trained_on: str) -> None:
    """Every LoRA pair must sit on a base module of the same shape; one line names the first misfit."""
    from safetensors import safe_open

    path = adapter_dir / "adapter_model.safetensors"
    if not path.is_file():
        raise ExportError(f"{path}: not found; the adapter folder is incomplete, rerun `python -m train`")
    modules = dict(model.named_modules())
    misfits, pairs = [], 0
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        for key in sorted(keys):
            if not key.endswith(".lora_A.weight"):
                continue
            pairs += 1
            name = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
            in_features = f.get_slice(key).get_shape()[1]
            b_key = key.replace(".lora_A.", ".lora_B.")
            out_features = f.get_slice(b_key).get_shape()[0] if b_key in keys else None
            module = modules.get(name)
            have = (getattr(module, "in_features", None), getattr(module, "out_features", None))
            if have != (in_features, out_features):
                shown = "missing" if module is None else f"{have[0]}->{have[1]}"
                misfits.append(f"{name} ({in_features}->{out_features} in the adapter, {shown} in the base)")
    if misfits:
        raise ExportError(
            f"adapter {adapter_dir} does not match base {base!r}: {len(misfits)} of {pairs} LoRA layers "
            f"differ, first {misfits[0]}; the run trained on {trained_on!r}: pass --base-model with the "
            "16-bit weights of that model"
        )


def load_tokenizer(adapter_dir: Path, base: str) -> Any:
    """The tokenizer the run trained with (saved next to the adapter), else the base's."""
    from transformers import AutoTokenizer

    source = str(adapter_dir) if (adapter_dir / "tokenizer_config.json").is_file() else base
    return AutoTokenizer.from_pretrained(source)


def repair_byte_level(folder: Path, probe: str) -> bool:
    """Clear `byte_fallback` on a byte-level BPE tokenizer.json; True when it did.

    transformers' GGUF tokenizer conversion marks SmolLM2's byte-level BPE as byte-fallback with a
    SentencePiece decoder. Byte-level BPE covers every byte, so the flag changes no encoding, but
    llama.cpp's converter then writes an SPM vocabulary that mis-tokenizes (and can crash llama.cpp).
    The repair is kept only when the probe text encodes and decodes exactly as before.
    """
    from transformers import AutoTokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        return False
    original = path.read_text(encoding="utf-8")
    spec = json.loads(original)
    model, pre = spec.get("model") or {}, json.dumps(spec.get("pre_tokenizer"))
    if model.get("type") != "BPE" or not model.get("byte_fallback") or '"ByteLevel"' not in pre:
        return False
    before = AutoTokenizer.from_pretrained(str(folder))
    ids = before(probe, add_special_tokens=False).input_ids
    model["byte_fallback"] = False
    spec["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    path.write_text(json.dumps(spec, ensure_ascii=False, indent=2), encoding="utf-8")
    after = AutoTokenizer.from_pretrained(str(folder))
    if after(probe, add_special_tokens=False).input_ids != ids or after.decode(ids) != before.decode(ids):
        path.write_text(original, encoding="utf-8")
        return False
    return True


def load_base(base: str, source: str, out_dir: Path, quants: list[str]) -> tuple[Any, Any]:
    """The base model at 16-bit and its config, once it is known to be unquantized and to fit on disk."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from export.quantize import check_disk, export_bytes

    model_config = AutoConfig.from_pretrained(base)
    check_16bit(model_config, base, source)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=merge_dtype(model_config))
    check_disk(out_dir.parent, export_bytes(sum(p.numel() for p in model.parameters()), quants))
    return model, model_config


def sentencepiece_model(base: str) -> Path | None:
    """The base's SentencePiece tokenizer.model, if it has one (a local folder or the hub cache)."""
    path = Path(base) / "tokenizer.model"
    if path.is_file():
        return path
    if Path(base).exists() or base.count("/") != 1:
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(base, "tokenizer.model")
    return Path(cached) if isinstance(cached, str) else None


def save_merged(model: Any, tokenizer: Any, out_dir: Path, probe: str, spm: Path | None = None) -> bool:
    """Write merged/ through a .partial folder; True when the tokenizer needed the byte-level repair.

    `spm`, the base's tokenizer.model, goes along: llama.cpp's converter reads a SentencePiece
    vocabulary (Gemma's) from it, and a transformers fast tokenizer does not save one.
    """
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial), safe_serialization=True)
    tokenizer.save_pretrained(str(partial))
    if spm and not (partial / "tokenizer.model").is_file():
        shutil.copyfile(spm, partial / "tokenizer.model")
    repaired = repair_byte_level(partial, probe)
    if repaired:
        print(
            "export: merged/tokenizer.json: cleared byte_fallback on its byte-level BPE (a transformers "
            "GGUF-conversion artifact that makes llama.cpp write a SentencePiece vocabulary); "
            "encodings unchanged",
            flush=True,
        )
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    return repaired


def merge(
    run_dir: Path, base: str, source: str, trained_on: str, out_dir: Path, quants: list[str], probe: str
) -> dict[str, Any]:
    """Load the base at 16-bit, apply the adapter, merge and save to `out_dir`; returns a summary."""
    from peft import PeftModel

    start = time.perf_counter()
    adapter_dir = run_dir / "adapter"
    model, model_config = load_base(base, source, out_dir, quants)
    check_adapter_fits(model, adapter_dir, base, trained_on)
    tokenizer = load_tokenizer(adapter_dir, base)
    # Training saves its max_seq_length as the tokenizer's limit; the merged model serves its full context.
    tokenizer.model_max_length = getattr(model_config, "max_position_embeddings", tokenizer.model_max_length)
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise ExportError(
            f"{adapter_dir}: the tokenizer has {len(tokenizer)} tokens but base {base!r} embeds {rows}; "
            "the adapter was trained on another model: pass --base-model with its 16-bit weights"
        )
    try:
        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    except RuntimeError as e:  # size mismatches outside the LoRA pairs (modules_to_save)
        raise ExportError(
            f"adapter {adapter_dir} does not match base {base!r}: {str(e).splitlines()[0]}"
        ) from None
    repaired = save_merged(model, tokenizer, out_dir, probe, sentencepiece_model(base))
    return {
        "path": str(out_dir),
        "base": base,
        "base_source": source,
        "dtype": str(model.dtype).removeprefix("torch."),
        "parameters": sum(p.numel() for p in model.parameters()),
        "bytes": sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file()),
        "tokenizer_repaired": repaired,
        "seconds": round(time.perf_counter() - start, 1),
    }
