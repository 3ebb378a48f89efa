"""llama.cpp's convert_hf_to_gguf.py, taken from the llama-cpp-python sdist of the installed version."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections import deque
from importlib import metadata
from pathlib import Path
from typing import Any

from export import ExportError

SCRIPT = "convert_hf_to_gguf.py"
LORA_SCRIPT = "convert_lora_to_gguf.py"  # a PEFT adapter -> a GGUF LoRA; it imports SCRIPT
# What the converters need from vendor/llama.cpp: the scripts, the model classes and their gguf-py.
KEEP = (SCRIPT, LORA_SCRIPT, "conversion/", "gguf-py/")
SOURCE_FILE = "SOURCE.json"  # what the cache folder was extracted from, written last


def llama_cpp_version() -> str:
    """The installed llama-cpp-python version: the converter must come from the same release."""
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        raise ExportError("llama-cpp-python is not installed; run `just setup`") from None


def _offline_hint(version: str) -> str:
    return (
        f"offline, run `pip download --no-deps --no-binary :all: llama-cpp-python=={version}` on a "
        "connected machine, copy the .tar.gz over and pass --converter-dir <that file> (or its extracted "
        "vendor/llama.cpp folder)"
    )


def extract(sdist: Path, target: Path) -> dict[str, Any]:
    """Extract only the converter's files from an sdist into `target`; returns what SOURCE.json records."""
    partial = target.with_name(target.name + ".partial")
    written = 0
    commit = "unknown"
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar:
                parts = member.name.split("/", 1)
                rel = parts[1] if len(parts) == 2 else ""
                if rel == ".git/modules/vendor/llama.cpp/HEAD":  # the vendored llama.cpp commit
                    commit = tar.extractfile(member).read().decode().strip()
                inner = rel.removeprefix("vendor/llama.cpp/")
                if inner == rel or not member.isfile() or not inner.startswith(KEEP) or ".." in inner:
                    continue
                dest = partial / inner
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(member).read())
                written += 1
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ExportError(f"{sdist}: cannot read the sdist ({e}); download it again") from None
    if not (partial / SCRIPT).is_file():
        raise ExportError(f"{sdist}: has no vendor/llama.cpp/{SCRIPT}; pass the llama-cpp-python sdist")
    source = {"sdist": sdist.name, "llama_cpp_commit": commit, "files": written}
    (partial / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return source


def download_sdist(version: str, into: Path) -> Path:
    """`pip download` the llama-cpp-python sdist; pip's own progress shows on the terminal."""
    into.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    cmd += [f"llama-cpp-python=={version}", "-d", str(into)]
    code, tail = stream(cmd, dict(os.environ), into / "pip-download.log", show=lambda line: True)
    found = sorted(into.glob(f"llama_cpp_python-{version}.tar.gz"))
    if code != 0 or not found:
        reason = next((line for line in reversed(tail) if "ERROR" in line), tail[-1] if tail else "no output")
        raise ExportError(
            f"could not download the llama-cpp-python {version} sdist for llama.cpp's converter "
            f"(pip: {reason.strip()}); {_offline_hint(version)}"
        )
    return found[0]


def converter(converter_dir: str, cache_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The folder holding convert_hf_to_gguf.py and gguf-py, and where it came from."""
    version = llama_cpp_version()
    if converter_dir:
        given = Path(converter_dir)
        if given.is_file() and given.name.endswith(".tar.gz"):
            sdist_version = given.name.removeprefix("llama_cpp_python-").removesuffix(".tar.gz")
            target = cache_dir / f"llama.cpp-convert-{sdist_version}"
            recorded = target / SOURCE_FILE
            if recorded.is_file() and not (target / LORA_SCRIPT).is_file():
                shutil.rmtree(target)  # extracted before the LoRA converter was kept
            source = json.loads(recorded.read_text()) if recorded.is_file() else extract(given, target)
            return target, {**source, "from": str(given)}
        if not (given / SCRIPT).is_file() or not (given / "gguf-py").is_dir():
            raise ExportError(
                f"--converter-dir {given}: expected {SCRIPT} and gguf-py/ inside (the vendor/llama.cpp "
                "folder of the llama-cpp-python sdist) or the sdist .tar.gz itself"
            )
        recorded = given / SOURCE_FILE
        source = json.loads(recorded.read_text()) if recorded.is_file() else {"llama_cpp_commit": "unknown"}
        return given, {**source, "from": str(given)}
    target = cache_dir / f"llama.cpp-convert-{version}"
    if (target / SOURCE_FILE).is_file() and not (target / LORA_SCRIPT).is_file():
        shutil.rmtree(target)  # extracted before the LoRA converter was kept: extract again
    if (target / SOURCE_FILE).is_file():
        return target, {**json.loads((target / SOURCE_FILE).read_text()), "from": str(target)}
    print(
        f"export: fetching llama.cpp's converter from the llama-cpp-python {version} sdist (once)", flush=True
    )
    download = cache_dir / f"download-{version}"
    sdist = download_sdist(version, download)
    source = extract(sdist, target)
    shutil.rmtree(download)  # the sdist (~75 MB) is not needed once its converter is extracted
    return target, {**source, "from": str(target)}


def stream(cmd: list[str], env: dict[str, str], log_path: Path, show: Any) -> tuple[int, list[str]]:
    """Run `cmd`, writing all output to `log_path` and echoing the lines `show` accepts.

    Carriage returns count as line ends so that tqdm bars redraw in place on the terminal.
    Returns the exit code and the last lines of output, for error messages.
    """
    tail: deque[str] = deque(maxlen=20)
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        buffer = b""
        while chunk := proc.stdout.read1(4096):
            buffer += chunk
            while True:
                cut = min((i for i in (buffer.find(b"\n"), buffer.find(b"\r")) if i >= 0), default=-1)
                if cut < 0:
                    break
                line, end, buffer = (
                    buffer[:cut].decode("utf-8", "replace"),
                    buffer[cut : cut + 1],
                    buffer[cut + 1 :],
                )
                log.write(line + "\n")
                if line.strip():
                    tail.append(line)
                if show(line):
                    sys.stderr.write(line + ("\r" if end == b"\r" else "\n"))
                    sys.stderr.flush()
        if buffer.strip():
            log.write(buffer.decode("utf-8", "replace"))
            tail.append(buffer.decode("utf-8", "replace"))
        code = proc.wait()
    return code, list(tail)


def _run_script(
    script: str, args: list[str], source: Path, out: Path, conv_dir: Path, log_path: Path
) -> dict:
    """One of llama.cpp's converters as a subprocess, its gguf-py first on PYTHONPATH, writing
    `out` (via a .partial file); raises ExportError with the telling line of its log."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(conv_dir / "gguf-py"), env.get("PYTHONPATH")) if p)
    partial = out.with_name(out.name + ".partial")
    cmd = [
        sys.executable,
        str(conv_dir / script),
        str(source),
        *args,
        "--outfile",
        str(partial),
        "--outtype",
        "f16",
    ]
    start = time.perf_counter()
    # Only the converter's own write bar reaches the terminal; its per-tensor log goes to the file.
    code, tail = stream(cmd, env, log_path, show=lambda line: line.startswith("Writing"))
    if code != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        errors = [line for line in tail if "error" in line.lower()] or tail[-1:]
        raise ExportError(
            f"{script} failed (exit {code}) on {source}: {errors[-1].strip() if errors else 'no output'}; "
            f"full log in {log_path}"
        )
    sys.stderr.write("\n")
    partial.replace(out)
    return {"path": str(out), "bytes": out.stat().st_size, "seconds": round(time.perf_counter() - start, 1)}


def convert(merged: Path, out: Path, conv_dir: Path, log_path: Path) -> dict[str, Any]:
    """merged/ -> F16 GGUF with convert_hf_to_gguf.py."""
    return _run_script(SCRIPT, [], merged, out, conv_dir, log_path)


def convert_lora(adapter: Path, base: Path, out: Path, conv_dir: Path, log_path: Path) -> dict[str, Any]:
    """A PEFT adapter folder -> an F16 GGUF LoRA, with llama.cpp's convert_lora_to_gguf.py.

    `base` is the local 16-bit HF base the adapter was trained on: the converter reads its
    config and tensor names from there (never from a hub).
    """
    if not (conv_dir / LORA_SCRIPT).is_file():
        raise ExportError(
            f"{conv_dir}: no {LORA_SCRIPT}; pass the llama-cpp-python sdist (.tar.gz) as --converter-dir, "
            "or its vendor/llama.cpp folder"
        )
    return _run_script(LORA_SCRIPT, ["--base", str(base)], adapter, out, conv_dir, log_path)
