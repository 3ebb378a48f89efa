"""Base models: the embedded SmolLM2 (converted once from its GGUF) or a hub id / local folder."""

from __future__ import annotations

import os
from pathlib import Path

from data.embedded import MissingModelError, load_gguf_tokenizer, smollm2_gguf
from data.paths import OUTPUTS
from data.settings import UserError

EMBEDDED = "smollm2"
BASE_CACHE = OUTPUTS / "base"


class BaseModelError(UserError, RuntimeError):
    """The base model cannot be found; the message says how to get it."""


def _not_found(name: str, why: str) -> BaseModelError:
    return BaseModelError(
        f"base model {name!r} not found ({why}). Download it on a connected machine with "
        f"`huggingface-cli download {name} --local-dir models/{name.split('/')[-1]}` and pass "
        f"`--base-model models/{name.split('/')[-1]}`, or train the embedded default with "
        "`--config configs/smollm2-135m-cpu.yaml`"
    )


def embedded_smollm2(cache: Path = BASE_CACHE) -> Path:
    """SmolLM2-135M-Instruct as an HF safetensors folder, converted once from the shipped GGUF.

    transformers dequantizes the GGUF on load but refuses to `save_pretrained` a GGUF-loaded
    model, so the model is rebuilt from its config and given the loaded state dict.
    """
    target = cache / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    try:
        gguf = smollm2_gguf()
    except MissingModelError as e:
        raise BaseModelError(str(e)) from None
    print(f"base: converting {gguf.name} to safetensors under {target} (once; ~10 s)", flush=True)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = load_gguf_tokenizer(gguf)
    # A fresh config, not loaded.config: that one carries a GGUF quantization_config, and a
    # folder saved with it would reload as GGUF-quantized.
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings: lm_head.weight is absent from the GGUF and shared with embed_tokens.
    if [m for m in missing if m != "lm_head.weight"] or unexpected:
        raise BaseModelError(f"converting {gguf}: missing {missing}, unexpected {unexpected}")
    for cfg in (model.config, model.generation_config):
        cfg.bos_token_id, cfg.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        cfg.pad_token_id = tokenizer.pad_token_id
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    partial.rename(target)
    print(f"base: wrote {target}", flush=True)
    return target


def embedded_tokenizer(cache: Path = BASE_CACHE) -> Path:
    """SmolLM2's tokenizer alone (3.4 MiB), saved once from the shipped GGUF.

    For random models that only need a real tokenizer (the GPU tier): this folder travels to a
    machine with no network where the 98 MiB GGUF and the 514 MiB converted weights would not.
    """
    target = cache / "smollm2-tokenizer"
    if (target / "tokenizer_config.json").is_file():
        return target
    try:
        tokenizer = load_gguf_tokenizer(smollm2_gguf())
    except MissingModelError as e:
        raise BaseModelError(str(e)) from None
    partial = target.with_name(target.name + ".partial")
    tokenizer.save_pretrained(partial)
    partial.rename(target)
    return target


def resolve_base(name: str) -> str:
    """A loadable model reference: a local folder, or a hub id when the hub is reachable."""
    if name == EMBEDDED:
        return str(embedded_smollm2())
    path = Path(name)
    if path.exists():
        if not (path / "config.json").is_file():
            raise BaseModelError(
                f"{path}: not a model folder (no config.json); pass a Hugging Face model folder"
            )
        return str(path)
    if name.startswith((".", "/")) or name.count("/") != 1:
        raise _not_found(name, "no such folder")
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return name
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise _not_found(name, "HF_HUB_OFFLINE=1 and it is not in the local cache")
    print(f"base: looking up {name} on the Hugging Face Hub", flush=True)
    try:
        hf_hub_download(name, "config.json")
    except Exception as e:  # noqa: BLE001 - any failure to reach the model means the same to the user
        raise _not_found(name, str(e).splitlines()[0][:160]) from None
    return name
