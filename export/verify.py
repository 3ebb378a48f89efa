"""Check an exported GGUF: metadata against the merged tokenizer, greedy parity against the merged model."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import data
from export import ExportError

SAMPLE = Path(data.__file__).parent / "sample_train.jsonl"  # packaged with data/, 20 records
# HF architecture -> the general.architecture llama.cpp's converter writes (its model class's model_arch).
ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3",
    "Phi3ForCausalLM": "phi3",
}


def parity_conversations(n: int) -> list[list[dict[str, str]]]:
    """System + user messages of `n` records of the packaged sample, one per domain, in file order."""
    from data.prompt import build_messages

    records, domains = [], set()
    for line in filter(str.strip, SAMPLE.read_text(encoding="utf-8").splitlines()):
        record = json.loads(line)
        domain = record["meta"]["domains"][0]
        if domain not in domains:
            domains.add(domain)
            records.append(record)
    return [build_messages(r, assistant=None) for r in records[:n]]


def probe_text() -> str:
    """Text that exercises a tokenizer: the task prompts and answers of the sample, plus other scripts."""
    from data.prompt import build_messages

    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:5]
    texts = [m["content"] for line in lines for m in build_messages(json.loads(line))]
    return "\n".join(texts) + "\nCafé  naïve\t日本語 😀 ½ — «ok»\n\n  end"


def gguf_fields(path: Path) -> dict[str, Any]:
    """Scalar and string metadata of a GGUF (token arrays left out)."""
    from gguf import GGUFReader

    out = {}
    for key, field in GGUFReader(str(path)).fields.items():
        if key.startswith("tokenizer.ggml.") and key.endswith(("tokens", "merges", "token_type", "scores")):
            continue
        out[key] = field.contents()
    return out


def expected_vocab(merged: Path) -> str | None:
    """The tokenizer.ggml.model the merged tokenizer needs: gpt2 (byte-level BPE) or llama (SentencePiece)."""
    path = merged / "tokenizer.json"
    if not path.is_file():
        return "llama" if (merged / "tokenizer.model").is_file() else None
    spec = json.loads(path.read_text(encoding="utf-8"))
    if '"ByteLevel"' in json.dumps(spec.get("pre_tokenizer")):
        return "gpt2"
    model = spec.get("model") or {}
    return "llama" if model.get("type") == "BPE" and model.get("byte_fallback") else None


def check_metadata(path: Path, merged: Path, tokenizer: Any, architecture: str) -> dict[str, Any]:
    """Architecture, vocabulary type, chat template and BOS/EOS ids of the GGUF vs the merged model."""
    fields = gguf_fields(path)
    checks = {
        "architecture": (fields.get("general.architecture"), ARCHITECTURES.get(architecture)),
        "vocabulary": (fields.get("tokenizer.ggml.model"), expected_vocab(merged)),
        "chat_template": (fields.get("tokenizer.chat_template"), tokenizer.chat_template),
        "eos_token_id": (fields.get("tokenizer.ggml.eos_token_id"), tokenizer.eos_token_id),
        "bos_token_id": (fields.get("tokenizer.ggml.bos_token_id"), tokenizer.bos_token_id),
    }
    report: dict[str, Any] = {}
    for name, (have, want) in checks.items():
        if want is None:  # nothing to hold it to (unknown architecture, no BOS)
            report[name] = {"gguf": have, "checked": False}
            continue
        report[name] = {"gguf": have, "expected": want, "ok": have == want}
    bad = [n for n, r in report.items() if r.get("ok") is False]
    if bad:
        shown = "; ".join(
            f"{n}: GGUF has {_short(report[n]['gguf'])}, the merged model {_short(report[n]['expected'])}"
            for n in bad
        )
        raise ExportError(f"{path.name}: metadata does not match the merged model: {shown}")
    report["add_bos_token"] = fields.get("tokenizer.ggml.add_bos_token")
    report["tokenizer_pre"] = fields.get("tokenizer.ggml.pre")
    return report


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two sequences share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def reference(
    merged: Path, prompts: list[list[int]], n_tokens: int, dtype: str, eos: list[int]
) -> list[list[int]]:
    """The merged HF model's greedy continuations (the reference every GGUF is held to)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(merged), dtype=getattr(torch, dtype))
    model.eval()
    out = []
    with torch.no_grad():
        for ids in prompts:
            tensor = torch.tensor([ids])
            generated = model.generate(
                tensor,
                attention_mask=torch.ones_like(tensor),
                max_new_tokens=n_tokens,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=eos[0],
            )
            out.append(generated[0, len(ids) :].tolist())
    return out


def open_gguf(path: Path, n_ctx: int, threads: int, lora: Path | None = None) -> Any:
    """A llama-cpp-python model that keeps the logits of every position (for teacher forcing),
    with a GGUF LoRA applied when `lora` is given."""
    from llama_cpp import Llama

    n = threads or None  # None: llama-cpp-python's own choice
    extra = {"lora_path": str(lora)} if lora else {}
    return Llama(
        str(path), n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=n, n_threads_batch=n, **extra
    )


def compare(
    llm: Any, ids: list[int], ref: list[int], n_tokens: int, eos: list[int]
) -> tuple[list[int], list[bool]]:
    """The GGUF's greedy continuation of `ids`, and whether each reference token is its top-1 choice.

    One pass over prompt + reference gives the teacher-forced choices; greedy decoding agrees with
    the reference up to the first miss, so it resumes from there instead of re-reading the prompt.
    """
    import numpy as np

    llm.reset()
    llm.eval(ids + ref[:-1])
    top = np.argmax(llm.scores[len(ids) - 1 : len(ids) - 1 + len(ref)], axis=1).tolist()
    hits = [a == b for a, b in zip(top, ref, strict=True)]
    k = hits.index(False) if False in hits else len(ref)
    out = ref[:k] + top[k : k + 1]
    if out[-1] in eos or len(out) >= n_tokens:
        return out, hits
    llm.n_tokens = len(ids) + len(out) - 1  # keep the cache of ids + out[:-1]; eval drops the rest
    llm.eval(out[-1:])
    while len(out) < n_tokens:
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(token)
        if token in eos:
            break
        llm.eval([token])
    return out, hits


def check_tokenizer(llm: Any, texts: list[str], prompts: list[list[int]], tokenizer: Any) -> None:
    """llama.cpp must tokenize each rendered prompt exactly as the merged tokenizer does."""
    for text, ids in zip(texts, prompts, strict=True):
        got = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if got != ids:
            i = common_prefix(got, ids)
            gguf = llm.detokenize(got[i : i + 3], special=True).decode("utf-8", "replace")
            raise ExportError(
                f"llama.cpp tokenizes the prompt differently from the merged tokenizer: first difference at "
                f"token {i} ({_short(gguf)} vs {_short(tokenizer.decode(ids[i : i + 3]))}); the GGUF "
                "vocabulary is wrong"
            )


def parity(
    files: dict[str, Path],
    merged: Path,
    tokenizer: Any,
    n_prompts: int,
    n_tokens: int,
    dtype: str,
    threads: int,
    loras: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Greedy first-N and teacher-forced top-1 agreement of every GGUF with the merged model;
    `loras` names the GGUF LoRA applied on top of a file (the base + adapter check)."""
    from data.prompt import chat_text

    texts = [chat_text(tokenizer, m, add_generation_prompt=True) for m in parity_conversations(n_prompts)]
    prompts = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    eos = [tokenizer.eos_token_id]
    started = time.perf_counter()
    refs = reference(merged, prompts, n_tokens, dtype, eos)
    report: dict[str, Any] = {"reference_seconds": round(time.perf_counter() - started, 1), "files": {}}
    n_ctx = max(len(p) for p in prompts) + n_tokens + 8
    for i, (quant, path) in enumerate(files.items()):
        started = time.perf_counter()
        llm = open_gguf(path, n_ctx, threads, (loras or {}).get(quant))
        if i == 0:  # the vocabulary is the same in every file
            check_tokenizer(llm, texts, prompts, tokenizer)
        rows = []
        for ids, ref in zip(prompts, refs, strict=True):
            out, hits = compare(llm, ids, ref, n_tokens, eos)
            rows.append(
                {"first_n": common_prefix(out, ref) / len(ref), "hits": hits, "gguf": out, "merged": ref}
            )
        llm.close()
        positions = [h for r in rows for h in r["hits"]]
        report["files"][quant] = {
            "first_n_agreement": round(sum(r["first_n"] for r in rows) / len(rows), 3),
            "teacher_forced_agreement": round(sum(positions) / len(positions), 3),
            "identical_prompts": sum(r["gguf"] == r["merged"] for r in rows),
            "prompts": len(rows),
            "tokens": n_tokens,
            "example": {
                "gguf": tokenizer.decode(rows[0]["gguf"]),
                "merged": tokenizer.decode(rows[0]["merged"]),
            },
            "seconds": round(time.perf_counter() - started, 1),
        }
    return report


def check_agreement(files: dict[str, Any], minimum: float) -> None:
    """Fail loudly on a GGUF whose output is not the merged model's."""
    for quant, row in files.items():
        agreement = row["teacher_forced_agreement"]
        if agreement < minimum:
            raise ExportError(
                f"{quant}: the GGUF agrees with the merged model on only {agreement:.0%} "
                f"of next tokens (minimum {minimum:.0%}); it said {_short(row['example']['gguf'])} where the "
                f"merged model said {_short(row['example']['merged'])}: the export is broken, do not ship it"
            )
