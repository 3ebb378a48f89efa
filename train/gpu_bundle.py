"""The wheels the GPU tier needs on a machine with no network: `just gpu-bundle`.

    python -m train.gpu_bundle [--out .gpu/wheels] [--limit-mib 60]

The device machine's image has torch, transformers, peft, accelerate and triton, but none of
Unsloth's training stack. This downloads that stack for Python 3.12 on manylinux x86_64, one
wheel per package and no dependencies resolved by pip (`--no-deps`): `PACKAGES` names every one,
at the version this checkout's .venv resolved, so the device runs what the tests here ran.

Two wheels carry what a training run never loads, and together they break the 64 MiB that
travels: Unsloth's wheel is 28 MiB, almost all of it its `studio/` web app, and bitsandbytes' is
43 MiB, a CUDA library for every CUDA from 11.8 to 13.2. `STRIP` repacks them without those
(`wheel unpack`, delete, `wheel pack`, which rewrites RECORD): bitsandbytes keeps the CUDA 13
builds that torch 2.11 on CUDA 13 loads, and its CPU one. The bundle must stay under
`--limit-mib` (60: the 64 MiB working-tree limit less the repository itself); it fails otherwise.
SmolLM2's tokenizer (3.4 MiB, outputs/base/smollm2-tokenizer) travels with it, for the GPU tests.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from data.settings import UserError

# Missing from the device image (its package list) and needed to import and run the trainer,
# its tests and the benchmark: Unsloth's stack, then the dependencies the image lacks or has in
# a version our pins exclude. Pure-Python or cp312 wheels; pyarrow (40 MiB) is on the image.
PACKAGES = (
    "unsloth",
    "unsloth_zoo",
    "trl",
    "datasets",
    "bitsandbytes",
    "xformers",
    "torchao",
    "cut_cross_entropy",
    "tyro",
    "docstring_parser",
    "typeguard",
    "msgspec",
    "hf_transfer",
    "diffusers",
    "json5",
    "nest_asyncio",
    "structlog",
    "dill",
    "multiprocess",
    "fsspec",
    "jsonschema",
    "jsonschema_specifications",
    "referencing",
    "rpds_py",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    "typing_extensions",
)
# Files left out of a wheel (fnmatch patterns on the paths inside it), with the reason above.
STRIP = {
    "unsloth": ["studio/*"],
    "bitsandbytes": ["bitsandbytes/libbitsandbytes_cuda1[12]*.so", "bitsandbytes/libbitsandbytes_rocm*.so"],
}
# pip matches manylinux tags exactly: these cover every wheel in PACKAGES.
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
PYTHON = "3.12"


class BundleError(UserError, RuntimeError):
    """The bundle cannot be made as asked; the message says why and what to do."""


def pins() -> list[str]:
    """`name==version` for every package, at the version installed in this environment."""
    out = []
    for name in PACKAGES:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise BundleError(f"{name} is not installed here; run `just setup` first") from None
    return out


def target_args() -> list[str]:
    """pip flags that select wheels for the device's interpreter and platform."""
    args = ["--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp"]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    return args


def download(requirements: list[str], out: Path) -> None:
    """Fetch each wheel (no dependencies) into `out`."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(out)]
    done = subprocess.run(cmd + target_args() + requirements, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise BundleError(f"pip download failed: {' '.join(tail)}")


def _project(wheel: Path) -> str:
    return wheel.name.split("-")[0].lower().replace("-", "_")


def strip(wheel: Path, patterns: list[str]) -> tuple[Path, int]:
    """Repack `wheel` without the files matching `patterns`; returns the new wheel and files dropped."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "wheel", "unpack", "-d", tmp, str(wheel)], check=True, capture_output=True
        )
        (root,) = Path(tmp).iterdir()
        dropped = 0
        for path in sorted(root.rglob("*")):
            if path.is_file() and any(
                fnmatch.fnmatch(path.relative_to(root).as_posix(), p) for p in patterns
            ):
                path.unlink()
                dropped += 1
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()
        packed = Path(tmp) / "packed"
        packed.mkdir()
        subprocess.run(
            [sys.executable, "-m", "wheel", "pack", "-d", str(packed), str(root)],
            check=True,
            capture_output=True,
        )
        (new,) = packed.iterdir()
        wheel.unlink()
        target = wheel.with_name(new.name)
        shutil.move(str(new), target)
    return target, dropped


def size_mib(folder: Path) -> float:
    """The size of every file in `folder`, in MiB."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def build(out: Path, limit_mib: float) -> float:
    """Download, strip and check the bundle; returns its size in MiB."""
    requirements = pins()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    print(
        f"gpu-bundle: downloading {len(requirements)} wheels for Python {PYTHON}, manylinux x86_64",
        flush=True,
    )
    download(requirements, out)
    for wheel in sorted(out.glob("*.whl")):
        patterns = STRIP.get(_project(wheel))
        if patterns:
            before = wheel.stat().st_size / 2**20
            new, dropped = strip(wheel, patterns)
            after = new.stat().st_size / 2**20
            print(f"gpu-bundle: {new.name}: {before:.1f} -> {after:.1f} MiB ({dropped} files left out)")
    names = {_project(w) for w in out.glob("*.whl")}
    missing = sorted({r.split("==")[0].lower() for r in requirements} - names)
    if missing:
        raise BundleError(f"no wheel came for {', '.join(missing)}")
    total = size_mib(out)
    print(f"gpu-bundle: {len(names)} wheels, {total:.1f} MiB in {out} (limit {limit_mib:.0f} MiB)")
    if total > limit_mib:
        raise BundleError(
            f"the bundle is {total:.1f} MiB, over the {limit_mib:.0f} MiB that can travel; strip more"
        )
    return total


def main(argv: list[str] | None = None) -> int:
    from train.base import BaseModelError, embedded_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".gpu/wheels", help="folder for the wheels (ignored by git)")
    parser.add_argument("--limit-mib", type=float, default=60.0, help="fail when the bundle is bigger")
    args = parser.parse_args(argv)
    try:
        wheels = build(Path(args.out), args.limit_mib)
        tokenizer = embedded_tokenizer()  # the GPU tests' tokenizer: it travels beside the wheels
    except (BundleError, BaseModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = wheels + size_mib(tokenizer)
    if total > args.limit_mib:
        print(
            f"error: wheels and tokenizer are {total:.1f} MiB, over {args.limit_mib:.0f} MiB", file=sys.stderr
        )
        return 2
    print(f"gpu-bundle: SmolLM2's tokenizer in {tokenizer}; {total:.1f} MiB travel in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
