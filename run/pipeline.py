"""The main job end to end: data -> train -> export -> eval -> serve, on one command.

    python -m run.pipeline [--serve false] [--train-config configs/<run>.yaml] [--from-stage STAGE]

`just demo` runs it. Each stage runs as its own `python -m <stage>` process, with its output
shown live and kept in outputs/.pipeline/<stage>.log. A finished stage leaves a stamp: a hash of
the files it reads (its inputs, its settings, and its code: every project module its entry
imports, found by `code_files`). A rerun skips every stage whose stamp still matches and says
so; a stage that failed or was interrupted resumes (training from its last checkpoint, eval
from its per-example cache). A failure names the stage, the cause and the command that resumes
from there.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from data.paths import DEFAULT_RUN, PIPELINE, eval_dir, gguf_file, run_dir
from data.settings import ConfigError, UserError, load_yaml, option, parse_config, user_errors

STAGES = ("data", "train", "export", "eval")
# The project's own top-level packages: the import graph is followed within them, and an import
# of anything else is a library, whose version the stages record instead.
PACKAGES = ("data", "train", "export", "run", "eval")
# First-run estimates on 2 CPU cores (measured, see docs/benchmarks.md), used for the overall
# ETA until this machine has timed each stage itself.
ESTIMATE_S = {"data": 25, "train": 750, "export": 50, "eval": 270, "serve": 20}
# What a rerun of an interrupted stage keeps (its inputs unchanged).
RESUME_NOTE = {
    "train": ", from its last checkpoint",
    "eval": ", reusing the answers it already cached",
}


@dataclass
class PipelineConfig:
    """Settings of `python -m run.pipeline` (`just demo`)."""

    train_config: str = option(f"configs/{DEFAULT_RUN}.yaml", "training config of the run to build")
    data_config: str = option("configs/data.yaml", "data preparation config")
    eval_limit: int = option(
        0, "test examples the eval scores (evenly spaced over the split); 0 means all 55"
    )
    # The zero-shot base often writes until the timeout: over all 55 examples it alone would
    # take most of the 20-minute budget, so the demo compares with the template and the gold;
    # `just eval` adds the base.
    eval_systems: list[str] = option(
        ["template", "gold"], "baselines the demo's eval scores beside the model; comma-separated"
    )
    eval_timeout_s: float = option(
        60.0, "per-example generation limit in the eval; an answer still running then scores as invalid"
    )
    serve: bool = option(True, "end by serving the exported model (API + Gradio) until Ctrl-C")
    host: str = option("127.0.0.1", "interface the server listens on")
    port: int = option(7860, "server port")
    from_stage: str = option("", "rerun this stage and every later one even if unchanged (data, train, ...)")
    state_dir: str = option(str(PIPELINE), "stamps, durations and per-stage logs")


@dataclass
class Stage:
    """One step of the pipeline: the command, the files it reads and the files it must leave."""

    name: str
    command: list[str]
    inputs: list[str]  # files, folders or globs, relative to the repository root
    outputs: list[str]
    fresh_flags: list[str] = field(default_factory=list)  # added when the inputs changed


class StageError(UserError, RuntimeError):
    """A stage exited non-zero or was interrupted."""


def _module_file(name: str, root: Path) -> Path | None:
    """The source of project module `name` (a.b is a/b.py or a/b/__init__.py); None for the rest."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def _imports(path: Path, name: str) -> set[str]:
    """Every module name the source of `name` imports, anywhere in it, relative imports resolved.

    `from x import y` yields x and x.y: y may be a submodule; a name in x resolves to no file.
    """
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except SyntaxError:  # still hashed; the stage itself reports the error when it runs
        return set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):  # the whole tree: heavy and project imports sit inside functions too
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: max(0, len(package) - node.level + 1)] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def code_files(entry: str, root: Path = Path(".")) -> list[Path]:
    """The project's source files that running module `entry` can execute, sorted.

    The entry itself, every project module it imports (at the top or inside functions, and so on
    transitively) and the __init__.py of every package on the way, read with `ast`, not imported.
    """
    if _module_file(entry, root) is None:
        raise ValueError(f"{entry}: no such module in {', '.join(PACKAGES)} under {root}")
    files: dict[str, Path] = {}
    todo = [entry]
    while todo:
        parts = todo.pop().split(".")
        for name in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):  # packages first
            path = None if name in files else _module_file(name, root)
            if path is not None:
                files[name] = path
                todo.extend(_imports(path, name))
    return sorted(set(files.values()))


def run_name(config: PipelineConfig) -> str:
    """The run the training config names (its file name if it names none)."""
    return str(load_yaml(config.train_config).get("run") or Path(config.train_config).stem)


def stages(config: PipelineConfig) -> list[Stage]:
    """The four stamped stages of the run named in the training config."""
    run = run_name(config)
    out = str(run_dir(run))
    gguf = str(gguf_file(out))
    processed = "data/processed"
    py = sys.executable

    def code(entry: str) -> list[str]:
        return [str(p) for p in code_files(entry)]

    return [
        Stage(
            "data",
            [py, "-m", "data", "--config", config.data_config],
            ["data/raw", "data/schema.json", config.data_config, *code("data.__main__")],
            [f"{processed}/{s}.messages.jsonl" for s in ("train", "val", "test")]
            + [f"{processed}/test.jsonl"],
        ),
        Stage(
            "train",
            [py, "-m", "train", "--config", config.train_config],
            [f"{processed}/train.messages.jsonl", f"{processed}/val.messages.jsonl"]
            + [f"{processed}/domain_weights.json", config.train_config, *code("train.__main__")],
            [f"{out}/adapter/adapter_model.safetensors", f"{out}/train_summary.json"],
            # A checkpoint of other data or settings must not be resumed.
            fresh_flags=["--resume", "false"],
        ),
        Stage(
            "export",
            [py, "-m", "export", "--run", out],
            [f"{out}/adapter", f"{out}/config.yaml", *code("export.__main__")],
            [gguf, f"{out}/Modelfile"],
        ),
        Stage(
            "eval",
            [py, "-m", "eval", "--model", out, "--systems", ",".join(config.eval_systems), "--name", run]
            + ["--limit", str(config.eval_limit), "--timeout-s", str(config.eval_timeout_s)],
            [gguf, f"{processed}/test.jsonl", "data/schema.json", *code("eval.__main__")],
            [str(eval_dir(run) / "metrics.json"), str(eval_dir(run) / "report.md")],
        ),
    ]


def _files(pattern: str) -> list[Path]:
    path = Path(pattern)
    if any(c in pattern for c in "*?["):
        return sorted(Path().glob(pattern))
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return [path]


def fingerprint(stage: Stage) -> str:
    """sha256 over the stage's command and the path and bytes of every input file."""
    digest = hashlib.sha256(json.dumps(stage.command[1:]).encode())
    for pattern in stage.inputs:
        for path in _files(pattern):
            digest.update(str(path).encode() + b"\0")
            if path.is_file():
                with path.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
            else:
                digest.update(b"<missing>")
    return digest.hexdigest()


class Stamps:
    """outputs/.pipeline/stamps.json: per stage, the input hash, its state and its last duration."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "stamps.json"
        self.data: dict[str, dict] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def get(self, name: str) -> dict:
        return self.data.get(name, {})

    def set(self, name: str, **values: object) -> None:
        self.data[name] = {**self.get(name), **values}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2))

    def expected_s(self, name: str) -> float:
        return float(self.get(name).get("seconds") or ESTIMATE_S.get(name, 60))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _cause(tail: str, code: int) -> str:
    """The most telling line of a failed stage's output: its `error:` line, else its last line."""
    lines = [ln.strip() for ln in tail.replace("\r", "\n").splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.lower().startswith("error") or "Error:" in line:
            return line
    return lines[-1] if lines else f"exit code {code}"


def stream(command: list[str], log: Path) -> tuple[int, str]:
    """Run a command with its output shown live and written to `log`; returns (exit code, tail)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    tail = b""
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        try:
            while chunk := os.read(proc.stdout.fileno(), 1 << 16):
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                sink.write(chunk)
                tail = (tail + chunk)[-8000:]
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
    return code, tail.decode("utf-8", "replace")


def run_stage(
    stage: Stage, plan: list[Stage], index: int, stamps: Stamps, state_dir: Path, force: bool
) -> str:
    """Run a stage unless its stamp matches; returns 'skipped' or 'ran'. Raises StageError."""
    key = fingerprint(stage)
    stamp = stamps.get(stage.name)
    prefix = f"pipeline [{index}/{len(plan)}] {stage.name}"
    outputs_there = all(Path(p).exists() for p in stage.outputs)
    if not force and stamp.get("inputs") == key and stamp.get("state") == "done" and outputs_there:
        print(f"{prefix}: skipped, its inputs are unchanged since {stamp.get('finished', 'the last run')}")
        return "skipped"
    command = list(stage.command)
    resuming = stamp.get("inputs") == key and stamp.get("state") == "started" and not force
    if not resuming:
        command += stage.fresh_flags
    left = sum(stamps.expected_s(s.name) for s in plan[index - 1 :]) + ESTIMATE_S["serve"]
    done_by = time.strftime("%H:%M", time.localtime(time.time() + left))
    why = "resuming the unfinished run" if resuming else ("forced" if force else "inputs changed or new")
    print(f"{prefix}: {why}; `{' '.join(['python', *command[1:]])}`")
    this = _minutes(stamps.expected_s(stage.name))
    print(f"{prefix}: this stage ~{this}; overall ~{_minutes(left)} left (done ~{done_by})")
    stamps.set(stage.name, inputs=key, state="started")
    start = time.monotonic()
    try:
        code, tail = stream(command, state_dir / f"{stage.name}.log")
    except KeyboardInterrupt:
        raise StageError(f"stage '{stage.name}' was interrupted") from None
    if code != 0:
        raise StageError(f"stage '{stage.name}' failed (exit {code}): {_cause(tail, code)}")
    seconds = round(time.monotonic() - start, 1)
    # The stamp hashes the inputs as they were when the stage started: a file edited meanwhile
    # makes the next run repeat the stage instead of trusting stale outputs.
    stamps.set(stage.name, state="done", seconds=seconds, finished=time.strftime("%Y-%m-%d %H:%M"))
    print(f"{prefix}: done in {_minutes(seconds)}")
    return "ran"


def wait_ready(url: str, proc: subprocess.Popen, limit_s: float = 300) -> bool:
    """Poll /healthz until the server answers, it exits, or `limit_s` passes."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def serve(config: PipelineConfig, run: str, started: float) -> int:
    """Serve the exported model until Ctrl-C, after reporting the time to a ready server."""
    gguf = str(gguf_file(run_dir(run)))
    url = f"http://{config.host}:{config.port}/"
    command = [
        sys.executable,
        "-m",
        "run.serve",
        "--model",
        gguf,
        "--host",
        config.host,
        "--port",
        str(config.port),
    ]
    print(f"pipeline [serve]: `{' '.join(['python', *command[1:]])}`", flush=True)
    proc = subprocess.Popen(command)
    try:
        if not wait_ready(url, proc):
            proc.terminate()
            raise StageError(
                f"stage 'serve' failed: the server did not come up at {url} (exit {proc.poll()})"
            )
        took = _minutes(time.monotonic() - started)
        print(f"pipeline: ready after {took} in all: {url} serves {gguf}; Ctrl-C stops")
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        return 0


def main(config: PipelineConfig) -> int:
    """Run the stages in order, print the eval's headline table, then serve."""
    if config.from_stage and config.from_stage not in STAGES:
        raise ConfigError(f"--from-stage {config.from_stage!r}: pick one of {', '.join(STAGES)}")
    state_dir = Path(config.state_dir)
    stamps = Stamps(state_dir)
    plan = stages(config)
    run = run_name(config)
    started = time.monotonic()
    finished: list[str] = []
    for i, stage in enumerate(plan, 1):
        force = bool(config.from_stage) and i - 1 >= STAGES.index(config.from_stage)
        try:
            run_stage(stage, plan, i, stamps, state_dir, force)
        except StageError as e:
            print(f"pipeline: {e}", file=sys.stderr)
            print(f"pipeline: full output in {state_dir / (stage.name + '.log')}", file=sys.stderr)
            kept = f"; {', '.join(finished)} will be skipped" if finished else ""
            how = RESUME_NOTE.get(stage.name, "")
            print(
                f"pipeline: resume with `just demo` (it starts at {stage.name}{how}{kept})", file=sys.stderr
            )
            return 1
        finished.append(stage.name)
    print(f"pipeline: data -> train -> export -> eval finished in {_minutes(time.monotonic() - started)}")
    metrics = eval_dir(run) / "metrics.json"
    if metrics.is_file():
        from eval.report import headline_table

        print(f"\nHeadline ({metrics.parent}/report.md has the rest):\n{headline_table(metrics)}\n")
    if not config.serve:
        return 0
    try:
        return serve(config, run, started)
    except StageError as e:
        print(f"pipeline: {e}\npipeline: resume with `just demo` (only serving is left)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    with user_errors():
        sys.exit(main(parse_config(PipelineConfig, None)))
