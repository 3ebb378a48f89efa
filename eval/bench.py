"""Eval benchmark section: the headline table of an eval report, into docs/benchmarks.md.

    python -m eval.bench [--name smollm2-135m-cpu]

It reads outputs/eval/<name>/metrics.json (written by `just demo` or `just eval`) and says
whether the system under test beats the template on step F1, ROUGE-L and BERTScore with
non-overlapping 95% confidence intervals, or a paired 95% CI of the difference above 0.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.paths import DEFAULT_RUN, EVAL, PIPELINE
from data.settings import ConfigError, option, parse_config, user_errors

# The criterion the default run is held to: beat the template on these with disjoint CIs.
VERSUS = ("step_f1", "rouge_l", "bertscore_f1")


@dataclass
class EvalBenchConfig:
    """Settings of `python -m eval.bench`."""

    name: str = option(DEFAULT_RUN, "eval report to record: outputs/eval/<name>/metrics.json")
    out_root: str = option(str(EVAL), "folder that holds one subfolder per report")
    baseline: str = option("template", "system the system under test is compared with")
    doc: str = option("docs/benchmarks.md", "benchmarks page to update")
    stamps: str = option(
        str(PIPELINE / "stamps.json"), "stage times of the last `just demo`, recorded beside the table"
    )


def verdict(metrics: dict[str, Any], baseline: str) -> list[str]:
    """One line per VERSUS metric: the two CIs, the paired difference on the same examples, and
    whether the system beats the baseline: disjoint CIs, or a paired 95% CI above 0."""
    first = metrics["setting"]["system_under_test"]
    if baseline not in metrics["overall"]:
        raise ConfigError(f"the report has no system {baseline!r}; it has {', '.join(metrics['overall'])}")
    lines = []
    for key in VERSUS:
        mine, theirs = metrics["overall"][first][key], metrics["overall"][baseline][key]
        disjoint = mine["lo"] is not None and theirs["hi"] is not None and mine["lo"] > theirs["hi"]
        pair = (metrics.get("paired") or {}).get(baseline, {}).get(key)
        above = bool(pair) and pair["lo"] is not None and pair["lo"] > 0
        word = "beats" if disjoint or above else "does not clearly beat"
        why = "the 95% CIs do not overlap" if disjoint else "the 95% CIs overlap"
        if pair and pair["mean"] is not None:
            side = "above 0" if above else "not above 0"
            n = f" over {pair['n']} examples" if pair.get("n") else ""
            why += (
                f"; paired difference{n} {pair['mean']:+.3f} [{pair['lo']:+.3f}, {pair['hi']:+.3f}], {side}"
            )
        lines.append(
            f"- {key}: `{first}` {mine['mean']:.3f} [{mine['lo']:.3f}, {mine['hi']:.3f}] {word} "
            f"`{baseline}` {theirs['mean']:.3f} [{theirs['lo']:.3f}, {theirs['hi']:.3f}] ({why})"
        )
    return lines


def stage_times(stamps: dict[str, Any]) -> str:
    """One line of the main job's stage durations, from run/pipeline.py's stamps."""
    done = {k: v["seconds"] for k, v in stamps.items() if v.get("state") == "done" and v.get("seconds")}
    if not done:
        return ""
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in done.items())
    return (
        f"Stage times of the `just demo` that produced it: {parts}; {sum(done.values()) / 60:.1f} min in all."
    )


def section(metrics: dict[str, Any], baseline: str, stamps: dict[str, Any] | None = None) -> str:
    """The markdown section: date, machine, command, the headline table and the verdict."""
    from eval.report import headline_table
    from train.bench import machine

    setting = metrics["setting"]
    times = stage_times(stamps) if stamps else ""
    return "\n".join(
        [
            "## Evaluation: the headline table",
            "",
            f"{setting.get('date', 'date not recorded')}, {machine()}; `{setting['command']}` "
            f"({setting['wall_s']:.0f} s for generation and scoring, answers from the cache: "
            f"{setting.get('from_cache') or 'none'}).",
            "",
            headline_table(metrics),
            "",
            *verdict(metrics, baseline),
            *(["", times] if times else []),
        ]
    )


def main(config: EvalBenchConfig) -> int:
    """Write the section and print it."""
    from train.bench import write_section

    path = Path(config.out_root) / config.name / "metrics.json"
    if not path.is_file():
        raise ConfigError(f"{path} not found: run `just demo` or `just eval --name {config.name}` first")
    stamps_path = Path(config.stamps)
    stamps = json.loads(stamps_path.read_text(encoding="utf-8")) if stamps_path.is_file() else None
    body = section(json.loads(path.read_text(encoding="utf-8")), config.baseline, stamps)
    write_section(Path(config.doc), "eval", body)
    print(body)
    print(f"eval.bench: wrote the eval section of {config.doc}")
    return 0


if __name__ == "__main__":
    with user_errors():
        sys.exit(main(parse_config(EvalBenchConfig, None)))
