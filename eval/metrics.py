"""Per-example metrics: structure validity, step F1 (plain and order-aware), ROUGE-L, BLEU, refusals.

Step F1 (`step_match`): each step becomes a canonical verb and a set of object lemmas
(eval/lemma.py). Two steps are similar by the Dice overlap of their objects, halved when their
verbs differ: similarity = Dice(objects) x (1.0 if the canonical verbs agree else 0.5). A pair
matches when its similarity is at least `STEP_THRESHOLD` = 0.5, that is, with the same verb
when half the object words are shared, with different verbs only when the objects are the same.
Alignment is one-to-one (Hungarian, scipy's linear_sum_assignment), maximising first the number
of matched pairs and then their similarity. Step F1 = 2PR / (P + R) over matched pairs.

The order-aware measure, `step_order_f1`, is the same F1 counting only the matched pairs that keep
the gold order: the longest run of matches whose predicted positions increase with the gold ones.
Reordering steps leaves step F1 unchanged and lowers this one.

ROUGE-L comes from `rouge-score` (with a Unicode word tokenizer, since its default one drops
every non-ASCII letter: Portuguese and German answers would lose words) and sentence BLEU from
`sacrebleu`, divided by 100 so that every score is on [0, 1]. Both compare `answer_text`: the
answer's lines (steps, then constraints and validation; reason and alternatives for a refusal).

Repetition (`repetition`): an item repeats when it equals an earlier item of the same answer once
case, punctuation and whitespace are folded, or comes within run/repetition.py's similarity
threshold of one (the same definition the decoder enforces). `repeated` is per answer (any item
repeats), `repeated_items` the share of the answer's items that repeat.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from data.schema import is_refusal, load_schema, validate_output
from eval.lemma import verb_object

STEP_THRESHOLD = 0.5
# Half credit for a verb mismatch: "Go to Security" and "Tap Security" act on one thing.
VERB_MISMATCH_WEIGHT = 0.5
SCHEMA_MAX_STEPS = load_schema()["$defs"]["procedure"]["properties"]["steps"]["maxItems"]
# A step that carries its own list marker renders as "1. 1. Tap ..." in the numbered list.
_OWN_MARKER = re.compile(r"^\s*(?:\d+\s*[.):]|[-*•])\s")
# The run/ self-check rules that are part of the style contract scored here.
_STYLE_RULES = ("imperative", "max_steps", "validation")


def answer_text(output: dict[str, Any] | None) -> str:
    """The answer's text, one item a line: what ROUGE-L, BLEU and BERTScore compare."""
    if not output:
        return ""
    keys = ("reason", "alternatives") if is_refusal(output) else ("steps", "constraints", "validation")
    lines: list[str] = []
    for key in keys:
        value = output.get(key) or []
        lines += [value] if isinstance(value, str) else [str(v) for v in value]
    return "\n".join(lines)


def step_similarity(a: str, b: str) -> float:
    """Dice overlap of the object lemmas, halved when the canonical verbs differ (see the docstring)."""
    verb_a, obj_a = verb_object(a)
    verb_b, obj_b = verb_object(b)
    dice = 1.0 if not obj_a and not obj_b else 2 * len(obj_a & obj_b) / (len(obj_a) + len(obj_b))
    return dice * (1.0 if verb_a == verb_b else VERB_MISMATCH_WEIGHT)


def align_steps(pred: list[str], gold: list[str], threshold: float = STEP_THRESHOLD) -> list[tuple[int, int]]:
    """One-to-one matched (pred index, gold index) pairs, sorted by gold index."""
    if not pred or not gold:
        return []
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    sim = np.array([[step_similarity(p, g) for g in gold] for p in pred])
    # 1 + similarity for a qualifying pair: the number of matches counts before their quality.
    weight = np.where(sim >= threshold, 1.0 + sim, 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if weight[r, c] > 0]
    return sorted(pairs, key=lambda rc: rc[1])


def _f1(matched: int, n_pred: int, n_gold: int) -> float:
    if not matched:
        return 0.0
    precision, recall = matched / n_pred, matched / n_gold
    return 2 * precision * recall / (precision + recall)


def _longest_increasing(values: list[int]) -> int:
    """Length of the longest strictly increasing subsequence (patience sorting)."""
    import bisect

    tails: list[int] = []
    for v in values:
        i = bisect.bisect_left(tails, v)
        tails[i : i + 1] = [v]
    return len(tails)


def step_match(pred: list[str], gold: list[str], threshold: float = STEP_THRESHOLD) -> dict[str, Any]:
    """Step precision, recall, F1, the order-aware F1 and the matched pairs."""
    pairs = align_steps(pred, gold, threshold)
    in_order = _longest_increasing([p for p, _ in pairs])
    return {
        "step_precision": len(pairs) / len(pred) if pred else 0.0,
        "step_recall": len(pairs) / len(gold) if gold else 0.0,
        "step_f1": _f1(len(pairs), len(pred), len(gold)),
        "step_order_f1": _f1(in_order, len(pred), len(gold)),
        "matches": [list(p) for p in pairs],
    }


def repetition(output: dict[str, Any]) -> dict[str, Any]:
    """Whether any item repeats an earlier one, and the share of items that do (see the docstring)."""
    from run.repetition import repeated_items

    repeats, items = repeated_items(output)
    return {"repeated": repeats > 0, "repeated_items": repeats / items if items else 0.0}


def style_problems(output: dict[str, Any], max_steps: int = SCHEMA_MAX_STEPS) -> list[str]:
    """The style rules a procedure breaks: numbered, imperative, at most N steps, has validation.

    "numbered": no step carries its own list marker (the numbered rendering adds the numbers).
    "imperative" and "validation" are the run/ self-check rules of the same names, so that
    serving and scoring share one definition. Refusals have no style rules.
    """
    from run.selfcheck import check

    if is_refusal(output):
        return []
    steps = [s for s in output.get("steps") or [] if isinstance(s, str)]
    checks = [v for v in output.get("validation") or [] if isinstance(v, str)]
    # The self-check wants a whole procedure; a lenient reference may lack fields it does not score.
    whole = {"schema": "ordered_steps", "steps": steps, "constraints": [], "validation": checks}
    broken = {v.rule for v in check(whole, "", None, max_steps=max_steps)}
    found = ["numbered"] if any(_OWN_MARKER.match(s) for s in steps) else []
    return found + [rule for rule in _STYLE_RULES if rule in broken]


def structure(
    output: dict[str, Any] | None, error: str | None, max_steps: int = SCHEMA_MAX_STEPS
) -> dict[str, Any]:
    """Structure validity: the JSON parses, validates against the schema, and passes the style rules.

    An engine result with no output parsed when its error says the JSON was read but did not
    validate (run.engine.parse_answer's "not a valid output" message).
    """
    if output is None:
        parsed = bool(error and error.startswith("not a valid output"))
        return {"json_valid": parsed, "schema_valid": False, "style_valid": False, "valid": False}
    schema_ok = not validate_output(output)
    problems = style_problems(output, max_steps) if schema_ok else ["schema"]
    return {
        "json_valid": True,
        "schema_valid": schema_ok,
        "style_valid": not problems,
        "valid": schema_ok and not problems,
        "style_problems": problems,
    }


class _Words:
    """A rouge-score tokenizer that keeps every letter: lowercased Unicode words."""

    def tokenize(self, text: str) -> list[str]:
        return re.findall(r"[^\W_]+", text.lower())


@functools.cache
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Words())


def rouge_l(pred: str, gold: str) -> float:
    """ROUGE-L F-measure (rouge-score) of two texts."""
    if not pred.strip() or not gold.strip():
        return 0.0
    return float(_rouge().score(gold, pred)["rougeL"].fmeasure)


def bleu(pred: str, gold: str) -> float:
    """Sentence BLEU (sacrebleu's defaults: 13a tokenizer, exp smoothing), on [0, 1]."""
    import sacrebleu

    if not pred.strip() or not gold.strip():
        return 0.0
    return min(1.0, sacrebleu.sentence_bleu(pred, [gold]).score / 100.0)  # 1.0000000000000002 is float noise


def corpus_bleu(preds: list[str], golds: list[str]) -> float:
    """Corpus BLEU over the examples (sacrebleu), on [0, 1]."""
    import sacrebleu

    if not preds:
        return 0.0
    return min(1.0, sacrebleu.corpus_bleu(preds, [golds]).score / 100.0)
