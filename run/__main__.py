"""Generate one procedure from the command line; tokens stream to stderr, the answer goes to stdout.

python -m run "reset my password" --app Shopify --platform ios [--locale en-US] [--json] [--key value ...]
"""

from __future__ import annotations

import dataclasses
import sys

from data.settings import ConfigError, option, parse_config, user_errors
from run.config import EngineConfig, context_of, context_options, engine_config

CliConfig = dataclasses.make_dataclass(
    "CliConfig",
    [
        ("intent", list[str], option([], "the intent: every bare argument, joined by spaces")),
        ("json", bool, option(False, "print the answer as JSON instead of the numbered list")),
        (
            "use_adapter",
            str,
            option("", "the --adapter NAME to answer with; empty picks by the context's domain"),
        ),
        *context_options(),
    ],
    bases=(EngineConfig,),
)
CliConfig.__module__ = __name__  # --help prints this module's docstring


def parse_args(argv: list[str] | None) -> CliConfig:
    """The CLI config from defaults, `--config FILE` and `--key value` flags."""
    config = parse_config(CliConfig, argv, positional="intent")
    if not " ".join(config.intent).strip():
        raise ConfigError('give the intent as an argument, e.g. python -m run "reset my password"')
    return config


def _summary(result) -> str:
    check = result.selfcheck
    failed = ", ".join(sorted({r for rules in check.failed for r in rules})) or "none"
    parts = [f"{result.tokens} tokens in {result.latency_s:.1f} s"]
    if result.adapter:
        parts.append(f"adapter {result.adapter}")
    if result.refused_by:
        parts.append(f"refused by the {result.refused_by}")
    if check.enabled and check.rounds:
        verdict = "passed" if check.passed else "still failing"
        parts.append(f"self-check: {check.rounds} draft(s), rules failed: {failed}, {verdict}")
    if result.redactions:
        parts.append("redacted: " + ", ".join(f"{k} x{v}" for k, v in result.redactions.items()))
    return "run: " + "; ".join(parts)


def main(config: CliConfig) -> int:
    """Load the model, answer the intent, print it; returns the exit code."""
    from run.boundary import InputError
    from run.engine import Engine

    engine = Engine(engine_config(config))
    print(f"run: model {engine.model_path}", file=sys.stderr, flush=True)
    seen = [0]

    def stream(round_no: int, text: str) -> None:
        if round_no != seen[0]:
            label = "draft" if round_no == 1 else f"revision {round_no - 1}"
            print(f"\n[{label}] ", end="", file=sys.stderr)
            seen[0] = round_no
        print(text, end="", file=sys.stderr, flush=True)

    try:
        result = engine.generate(
            " ".join(config.intent),
            context_of(config),
            grammar=config.grammar,
            selfcheck=config.selfcheck,
            stream=stream,
            adapter=config.use_adapter or None,
        )
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        engine.close()
    print("\n" + _summary(result), file=sys.stderr)
    if not result.ok:
        print(f"error: {result.status}: {result.error}", file=sys.stderr)
        return 1
    print(result.json if config.json else result.numbered)
    return 0


if __name__ == "__main__":
    with user_errors():
        sys.exit(main(parse_args(None)))
