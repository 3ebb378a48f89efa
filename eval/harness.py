"""The harness: generate each system's answers (resumable, with a progress bar) and score every example.

The cache is `cache/<system>.jsonl` in the report folder: one line per answered example, appended
and flushed as soon as it exists, keyed by a hash of the system's fingerprint (model file, size,
mtime and every generation setting) and the example's input. An interrupted run of the same
name picks up where it stopped; a changed model, setting or example is answered afresh.

How refusals are scored: every example scores `refusal_correct` (the answer is a refusal exactly
when the reference is one). On a reference refusal, the step, text, constraint and hallucination
metrics do not apply (None); a procedure answered to an unsafe intent is caught by
`refusal_correct` alone. On a reference procedure, a refusal or an invalid answer has no steps:
step F1, ROUGE-L, BLEU, BERTScore and constraint satisfaction are 0 and hallucination is None.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from data.schema import is_refusal
from eval import metrics
from eval.entities import hallucination_rate
from eval.references import Example
from eval.systems import Prediction


def _cache_key(fingerprint: str, example: Example) -> str:
    return hashlib.sha256(f"{fingerprint}|{example.fingerprint}".encode()).hexdigest()[:24]


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """Cached predictions by key; a line cut short by an interruption is skipped."""
    found = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a killed run
            found[row["key"]] = row["prediction"]
    return found


def generate(
    name: str, system: Any, examples: list[Example], cache_dir: Path, resume: bool = True
) -> tuple[list[Prediction], int]:
    """Every example's prediction, reusing the cache; returns them and how many came from the cache."""
    from tqdm import tqdm

    if system.kind != "model":  # instant and deterministic: nothing worth caching
        return [system.predict(e) for e in examples], 0
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{name}.jsonl"
    if not resume and path.exists():
        path.unlink()
    cached = _read_cache(path)
    fingerprint = system.fingerprint
    keys = [_cache_key(fingerprint, e) for e in examples]
    out = [Prediction(**cached[k]) if k in cached else None for k in keys]
    todo = [i for i, p in enumerate(out) if p is None]
    with path.open("a", encoding="utf-8") as sink:
        if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            sink.write("\n")  # end the line a killed run left half-written, so that ours starts afresh
        # Only the uncached examples go through the bar, so that its rate and ETA are real.
        for i in tqdm(todo, desc=f"eval {name}", unit="ex", file=sys.stderr, dynamic_ncols=True):
            out[i] = system.predict(examples[i])
            line = {"key": keys[i], "id": examples[i].id, "prediction": out[i].to_dict()}
            sink.write(json.dumps(line, ensure_ascii=False) + "\n")
            sink.flush()
    return out, len(examples) - len(todo)


def score(example: Example, pred: Prediction, max_steps: int) -> dict[str, Any]:
    """Every per-example metric except the semantic ones (see `add_semantic`)."""
    output = pred.output
    refused = is_refusal(output) if output else False
    scores: dict[str, Any] = metrics.structure(output, pred.error, max_steps)
    scores["refused"] = refused
    scores["refusal_correct"] = output is not None and refused == example.refusal
    if output is not None:
        scores.update(metrics.repetition(output))
    if example.refusal:
        return scores
    steps = [] if not output or refused else list(output["steps"])
    scores.update(metrics.step_match(steps, example.output["steps"]))
    pred_text, gold_text = metrics.answer_text(output), metrics.answer_text(example.output)
    scores["rouge_l"] = metrics.rouge_l(pred_text, gold_text)
    scores["bleu"] = metrics.bleu(pred_text, gold_text)
    scores["hallucination"] = hallucination_rate(
        steps, example.intent, example.context, gold_text, example.language
    )
    return scores


def add_semantic(rows: list[dict[str, Any]], examples: dict[str, Example]) -> None:
    """BERTScore F1 and constraint satisfaction for every row with a reference procedure, in batches."""
    from eval import semantic

    todo = [r for r in rows if not r["gold_refusal"]]
    preds = [metrics.answer_text(r["prediction"]) for r in todo]
    golds = [metrics.answer_text(examples[r["id"]].output) for r in todo]
    for row, value in zip(todo, semantic.bertscore_f1(preds, golds), strict=True):
        row["scores"]["bertscore_f1"] = value
    items = []
    for row in todo:
        output = row["prediction"]
        lines = metrics.answer_text(output).splitlines() if output and not is_refusal(output) else []
        items.append((list(examples[row["id"]].output.get("constraints") or []), lines))
    for row, value in zip(todo, semantic.constraint_satisfaction(items), strict=True):
        row["scores"]["constraint_sat"] = value


def rows_for(system: str, examples: list[Example], preds: list[Prediction], max_steps: int) -> list[dict]:
    """The predictions.jsonl rows of one system: the prediction, its scores and its cost."""
    rows = []
    for example, pred in zip(examples, preds, strict=True):
        rows.append(
            {
                "system": system,
                "id": example.id,
                "domain": example.domain,
                "language": example.language,
                "gold_refusal": example.refusal,
                "intent": example.intent,
                "context": example.context,
                "prediction": pred.output,
                "status": pred.status,
                "error": pred.error,
                "refused_by": pred.refused_by,
                "tokens": pred.tokens,
                "latency_s": pred.latency_s,
                "selfcheck_rounds": pred.selfcheck_rounds,
                "scores": score(example, pred, max_steps),
            }
        )
    return rows
