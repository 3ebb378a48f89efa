"""Evaluate a model against the baselines on a test file, and run the human-evaluation kit.

python -m eval [--model outputs/<run> | FILE.gguf | base | template | gold] [--systems base,template,gold]
               [--test-file data/processed/test.jsonl] [--ablate grammar,selfcheck] [--name X] [--key value]
python -m eval human-sheet --predictions outputs/eval/<name>/predictions.jsonl --systems SYSTEM_A,SYSTEM_B
python -m eval human-score outputs/eval/<name>/human/rater1.csv [rater2.csv ...] [--key key.json]

Outputs go to outputs/eval/<name>/: predictions.jsonl, metrics.json, report.md, PNG charts,
config.yaml and cache/ (per-example answers; a rerun of the same name resumes from it).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from data.paths import eval_dir
from data.settings import ConfigError, dump_config, library_versions, parse_config, user_errors
from eval.config import EvalConfig, HumanScoreConfig, HumanSheetConfig

SUBCOMMANDS = ("human-sheet", "human-score")
PACKAGES = ("llama-cpp-python", "rouge-score", "sacrebleu", "bert-score", "torch", "transformers", "numpy")
PACKAGES += ("scipy", "matplotlib", "jsonschema")


def parse_args(argv: list[str] | None) -> Any:
    """The config of the command in argv: an EvalConfig, or a human-kit config after its subcommand."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(__doc__.strip() + "\n")  # the usage of every command, then the options of this one
    if argv and argv[0] == "human-sheet":
        return parse_config(HumanSheetConfig, argv[1:])
    if argv and argv[0] == "human-score":
        return parse_config(HumanScoreConfig, argv[1:], positional="sheets")
    if argv and not argv[0].startswith("-"):
        raise ConfigError(
            f"unknown command {argv[0]!r}; commands: {', '.join(SUBCOMMANDS)} (or none, to evaluate)"
        )
    return parse_config(EvalConfig, argv)


def versions() -> dict[str, str]:
    """Python, the machine and the versions of the libraries the scores depend on."""
    return library_versions(PACKAGES)


def plan(config: EvalConfig) -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, spec, ablated features) of every system, the system under test first, names unique."""
    from eval.systems import system_name

    main_name = system_name(config.model)
    entries = [(main_name, config.model, ())]
    entries += [(f"{main_name}-no-{feature}", config.model, (feature,)) for feature in config.ablate]
    entries += [(system_name(s), s, ()) for s in config.systems if s != config.model]
    if config.adapter:
        entries.insert(1, ("per-domain-adapters", f"adapters={config.adapter_base}", ()))
    seen: dict[str, int] = {}
    out = []
    for name, spec, ablate in entries:
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}-{seen[name]}", spec, ablate))
    return out


def build_metrics(
    config: EvalConfig, rows: list[dict], refs: dict, extra: dict[str, Any], gold_texts: dict[str, str]
) -> dict[str, Any]:
    """metrics.json: the setting, the thresholds, the test set and every aggregate."""
    from eval import metrics, semantic, stats
    from eval.references import file_sha256

    systems = list(stats.by_system(rows))
    first = systems[0]
    paired = {
        other: {
            m: stats.paired_diff(rows, first, other, m, config.bootstrap, config.seed) for m in stats.PAIRED
        }
        for other in systems[1:]
    }
    return {
        "setting": {
            **extra,
            "system_under_test": first,
            "systems": systems,
            "test_file": config.test_file,
            "test_sha256": file_sha256(config.test_file),
            "evaluated": refs["evaluated"],
            "bootstrap": config.bootstrap,
            "seed": config.seed,
            "engine": config.engine_settings(),
            "bertscore": semantic.setting() if config.semantic else None,
        },
        "thresholds": {
            "step_match_similarity": metrics.STEP_THRESHOLD,
            "step_verb_mismatch_weight": metrics.VERB_MISMATCH_WEIGHT,
            "constraint_cosine": semantic.CONSTRAINT_THRESHOLD if config.semantic else None,
            "max_steps": config.max_steps,
        },
        "references": refs,
        "overall": stats.overall(rows, config.bootstrap, config.seed),
        "corpus_bleu": _corpus_bleu(rows, systems, gold_texts),
        "paired": paired,
        "per_domain": stats.grouped(rows, "domain"),
        "per_language": stats.grouped(rows, "language"),
        "cost": stats.cost(rows),
        "versions": versions(),
    }


def _corpus_bleu(rows: list[dict], systems: list[str], gold_texts: dict[str, str]) -> dict[str, float]:
    """Corpus BLEU per system over the reference procedures (sacrebleu), on [0, 1]."""
    from eval.metrics import answer_text, corpus_bleu

    out = {}
    for system in systems:
        mine = [r for r in rows if r["system"] == system and not r["gold_refusal"]]
        out[system] = corpus_bleu(
            [answer_text(r["prediction"]) for r in mine], [gold_texts[r["id"]] for r in mine]
        )
    return out


def evaluate(config: EvalConfig, command: str = "python -m eval") -> Path:
    """Generate, score and report; returns the report folder."""
    from eval import harness, report
    from eval.metrics import answer_text
    from eval.references import load_examples
    from eval.systems import build, system_name

    examples, refs = load_examples(config.test_file, config.limit)
    name = config.name or system_name(config.model)
    out_dir = eval_dir(name, config.out_root)
    adapters = tuple(config.adapter)
    systems = [
        (n, build(spec, config.engine_settings(), ablate, adapters)) for n, spec, ablate in plan(config)
    ]
    dump_config(config, out_dir / "config.yaml")  # after the specs resolved: a typo leaves no folder
    print(
        f"eval: {len(examples)} examples of {config.test_file}; systems: {', '.join(n for n, _ in systems)}"
    )
    dropped = sum(refs["context_fields_dropped"].values())
    print(
        f"eval: {refs['references_breaking_style']} reference(s) break the style guide (scored anyway); "
        f"{dropped} context field(s) the schema rejects were dropped"
    )
    rows, reused, started = [], {}, time.monotonic()
    for sys_name, system in systems:
        try:
            preds, reused[sys_name] = harness.generate(
                sys_name, system, examples, out_dir / "cache", config.resume
            )
        finally:
            system.close()
        if reused[sys_name]:
            print(f"eval: {sys_name}: {reused[sys_name]} of {len(examples)} answers from the cache")
        rows += harness.rows_for(sys_name, examples, preds, config.max_steps)
    by_id = {e.id: e for e in examples}
    if config.semantic:
        print("eval: BERTScore and constraint satisfaction (MiniLM, CPU)", file=sys.stderr)
        harness.add_semantic(rows, by_id)
    extra = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "name": name,
        "command": command,
        "from_cache": reused,
        "wall_s": round(time.monotonic() - started, 1),
    }
    gold_texts = {e.id: answer_text(e.output) for e in examples}
    metrics = build_metrics(config, rows, refs, extra, gold_texts)
    with (out_dir / "predictions.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    report.write_report(out_dir, metrics)
    print(report.headline_table(metrics))
    print(f"eval: wrote {out_dir}/report.md, metrics.json, predictions.jsonl and charts")
    return out_dir


def main(config: Any, command: str = "python -m eval") -> int:
    """Run the command a config belongs to; returns the exit code."""
    from eval import human

    if isinstance(config, HumanSheetConfig):
        out = human.make_sheet(config)
        print(f"eval: wrote {out}/sheet.csv, sheet.html and key.json (keep key.json from the raters)")
    elif isinstance(config, HumanScoreConfig):
        print(human.markdown(human.score_sheets(config)))
    else:
        evaluate(config, command)
    return 0


if __name__ == "__main__":
    from eval.human import HumanKitError
    from eval.references import EvalDataError
    from eval.systems import SpecError

    with user_errors(EvalDataError, SpecError, HumanKitError):
        sys.exit(main(parse_args(None), "python -m eval " + " ".join(sys.argv[1:])))
