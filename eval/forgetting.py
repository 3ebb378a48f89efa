"""A check for forgetting: does a model still answer a plain question, not with a procedure?

    python -m eval.forgetting [--models base,outputs/smollm2-135m-cpu]

Each model answers the questions of eval/probes/general.jsonl (general knowledge, one expected
word each) as a plain chat with no system prompt, greedy and unconstrained, through
llama-cpp-python. An answer passes when it holds one of the expected words and is not a JSON
procedure. The rates, side by side, go to docs/benchmarks.md and outputs/eval/forgetting.json.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data import paths
from data.settings import option, parse_config, user_errors

PROBES = Path(__file__).parent / "probes" / "general.jsonl"


@dataclass
class ForgettingConfig:
    """Settings of `python -m eval.forgetting`."""

    models: list[str] = option(
        ["base", str(paths.run_dir(paths.DEFAULT_RUN))], "model specs, as --model of eval"
    )
    max_tokens: int = option(48, "tokens per answer")
    threads: int = option(0, "CPU threads for llama.cpp; 0 takes one per physical core (serving's)")
    doc: str = option("docs/benchmarks.md", "benchmarks page to update")


def read_probes(path: Path = PROBES) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def passes(answer: str, expect: list[str]) -> bool:
    """The rule: an expected word in the answer, and the answer is not a JSON object."""
    text = answer.strip().casefold()
    return not text.startswith("{") and any(word in text for word in expect)


def answer_all(gguf: Path, probes: list[dict[str, Any]], config: ForgettingConfig) -> list[dict[str, Any]]:
    from llama_cpp import Llama

    from run.config import physical_cores

    llm = Llama(str(gguf), n_ctx=512, n_threads=config.threads or physical_cores(), verbose=False, seed=13)
    try:
        rows = []
        for probe in probes:
            reply = llm.create_chat_completion(
                [{"role": "user", "content": probe["question"]}],
                max_tokens=config.max_tokens,
                temperature=0.0,
            )
            text = reply["choices"][0]["message"]["content"] or ""
            rows.append({"id": probe["id"], "answer": text, "pass": passes(text, probe["expect"])})
        return rows
    finally:
        llm.close()


def main(config: ForgettingConfig, command: str) -> int:
    from datetime import date

    from eval.systems import resolve_gguf, system_name
    from train.bench import machine, write_section

    probes = read_probes()
    results = {system_name(spec): answer_all(resolve_gguf(spec), probes, config) for spec in config.models}
    out = paths.EVAL / "forgetting.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = ["| model | plain questions answered | failed |", "|---|---|---|"]
    for name, rows in results.items():
        failed = ", ".join(r["id"] for r in rows if not r["pass"]) or "none"
        lines.append(f"| `{name}` | {sum(r['pass'] for r in rows)} / {len(rows)} | {failed} |")
    body = "\n".join(
        [
            "## Forgetting: plain questions",
            "",
            f"{date.today().isoformat()}, {machine()}; `{command}`; {len(probes)} questions of "
            "`eval/probes/general.jsonl`, no system prompt, greedy, unconstrained; an answer passes "
            "when it holds the expected word and is not a JSON procedure.",
            "",
            *lines,
        ]
    )
    write_section(Path(config.doc), "forgetting", body)
    print(body)
    return 0


if __name__ == "__main__":
    with user_errors():
        sys.exit(
            main(parse_config(ForgettingConfig, None), "python -m eval.forgetting " + " ".join(sys.argv[1:]))
        )
