"""The GPU tier in one prepared run on a machine with CUDA and no network: `just gpu-check`.

    python3 -m train.gpu_check --out "$OUT"                       # on the GPU machine
    .venv/bin/python -m train.gpu_check --dry-run                 # here: everything but CUDA

Steps, in order, each under its own time limit and all under `--budget-s` (470 s: the whole
run ends inside 8 minutes, the machine's start aside):
1. install: the wheels of `just gpu-bundle` into a temporary site directory (pip, no index);
2. imports: unsloth, trl, bitsandbytes, datasets and xformers import, and the GPU is named;
3. tests: the GPU tier (`pytest -m gpu` on the files that hold it): a tiny QLoRA run on a
   random Llama with SmolLM2's tokenizer, end to end through `python -m train`, and its merge
   at 16 bits;
4. bench: `train.bench_gpu` on the random Llama-3.1-8B-shaped model, 4-bit, a short sequence
   and a few steps: steps/s, tokens/s and peak VRAM of our trainer against plain HF + PEFT.
Everything goes to `--out`: summary.json (each step's status, seconds and output tail),
one log per step, and benchmarks.md with the bench's section for docs/benchmarks.md.

`--dry-run` runs the same steps here without CUDA: the wheels install into a site directory for
Python 3.12 (so a wheel that cannot install there fails here first), the imports run in this
environment, the GPU tests are collected and skip, and the bench must stop with its one-line
"needs a CUDA GPU" error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from data.paths import OUTPUTS
from train.gpu_bundle import target_args

IMPORTS = ("unsloth", "trl", "bitsandbytes", "datasets", "xformers")
# The bench's size: 6 timed steps of 2 x 512 tokens keep both trainers (each loading the 8B
# shape in 4-bit) inside about 4 minutes on an H100-class GPU; enough steps for a steady rate.
BENCH_FLAGS = ("--steps", "6", "--batch", "2", "--seq-len", "512")
# Seconds per step; the run's budget caps the sum.
LIMITS = {"install": 120, "imports": 120, "tests": 240, "bench": 330}
_PROBE = (
    "import importlib, json, torch; "
    "mods = {m: getattr(importlib.import_module(m), '__version__', '?') for m in %r}; "
    "gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None; "
    "print(json.dumps({'modules': mods, 'torch': torch.__version__, 'cuda': torch.version.cuda, 'gpu': gpu}))"
)


def _run(name: str, cmd: list[str], env: dict, limit: float, out: Path) -> dict:
    """One step: its command, exit code, seconds and output tail; the whole output in <name>.log."""
    start = time.monotonic()
    print(f"gpu-check: {name}: {' '.join(cmd)} (limit {limit:.0f} s)", flush=True)
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=max(1.0, limit))
        code, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        code = 124
        text = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
        text += f"\ngpu-check: {name} ran past its {limit:.0f} s limit"
    (out / f"{name}.log").write_text(text, encoding="utf-8")
    seconds = round(time.monotonic() - start, 1)
    print(f"gpu-check: {name}: exit {code} in {seconds} s", flush=True)
    return {"step": name, "command": cmd, "exit": code, "seconds": seconds, "tail": text[-2000:]}


def steps(args: argparse.Namespace, site: Path) -> list[tuple[str, list[str], bool]]:
    """(name, command, uses the bundle's site directory) for each step."""
    python = sys.executable
    wheels = sorted(str(w) for w in Path(args.bundle).glob("*.whl"))
    install = [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    install += ["--no-cache-dir", "--target", str(site)] + (target_args() if args.dry_run else []) + wheels
    # Only the files that hold GPU-tier tests: collecting the others would import what the
    # device image lacks and the GPU tier never needs (llama-cpp-python, gradio, ...).
    gpu_files = sorted(str(p) for p in Path("tests").rglob("test_*.py") if "mark.gpu" in p.read_text())
    pytest = [python, "-m", "pytest", "-m", "gpu", *gpu_files, "-q", "-rs", "-p", "no:cacheprovider"]
    bench = [python, "-m", "train.bench_gpu", *BENCH_FLAGS, "--out", str(Path(args.out) / "benchmarks.md")]
    # In a dry run the site holds Python 3.12 wheels: this interpreter imports its own packages.
    bundled = not args.dry_run
    return [
        ("install", install, False),
        ("imports", [python, "-c", _PROBE % (IMPORTS,)], bundled),
        ("tests", pytest, bundled),
        ("bench", bench, bundled),
    ]


def judge(name: str, result: dict, dry_run: bool) -> bool:
    """Whether a step did what it should: exit 0, except the bench of a dry run, which must refuse."""
    if dry_run and name == "bench":
        return result["exit"] == 2 and "needs a CUDA GPU" in result["tail"]
    if dry_run and name == "tests":
        return result["exit"] == 0 and "skipped" in result["tail"]
    return result["exit"] == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=".gpu/wheels", help="the wheels of `just gpu-bundle`")
    parser.add_argument(
        "--out", default=os.environ.get("OUT") or str(OUTPUTS / "gpu-check"), help="where results go"
    )
    parser.add_argument("--budget-s", type=float, default=470.0, help="seconds for every step together")
    parser.add_argument("--dry-run", action="store_true", help="run here without CUDA (see the docstring)")
    args = parser.parse_args(argv)
    if not any(Path(args.bundle).glob("*.whl")):
        print(f"error: no wheels in {args.bundle}; run `just gpu-bundle` first", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s
    results, ok = [], True
    with tempfile.TemporaryDirectory(prefix="stepsmith-gpu-site-") as site:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        bundled_env = dict(env, PYTHONPATH=os.pathsep.join([site, os.getcwd(), env.get("PYTHONPATH", "")]))
        for name, cmd, bundled in steps(args, Path(site)):
            left = deadline - time.monotonic()
            if left <= 1:
                results.append(
                    {"step": name, "exit": None, "seconds": 0, "tail": "not run: the budget was spent"}
                )
                ok = False
                continue
            result = _run(name, cmd, bundled_env if bundled else env, min(LIMITS[name], left), out)
            result["ok"] = judge(name, result, args.dry_run)
            ok &= result["ok"]
            results.append(result)
            if name == "install" and not result["ok"]:
                break  # nothing else can run without the bundle
    summary = {"dry_run": args.dry_run, "ok": ok, "budget_s": args.budget_s, "steps": results}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    verdict = "every step did what it should" if ok else "a step failed; see its log"
    print(f"gpu-check: {verdict}; results in {out}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
