"""`python -m export` front door: --quant parsing, one-line errors, find_gguf, disk and converter checks."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from data.settings import ConfigError
from export import ExportError, find_gguf
from export.__main__ import parse_args
from export.convert import SOURCE_FILE, converter, extract
from export.quantize import check_disk, export_bytes
from export.verify import check_agreement, common_prefix


def _export(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "export", *args], cwd=root, capture_output=True, text=True, timeout=120
    )


def test_missing_run_is_one_line(root):
    result = _export(root, "--run", "outputs/no-such-run")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: outputs/no-such-run: run folder not found; pass --run outputs/<run>")


def test_run_without_adapter_says_to_finish_training(root, tmp_path):
    result = _export(root, "--run", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path}/adapter/adapter_config.json: not found; `python -m train` writes adapter/ when "
        "training finishes, so finish (or rerun) the training of this run first"
    ]


def test_bad_quant_lists_the_supported_ones(root):
    result = _export(root, "--run", "outputs/x", "--quant", "q4_k_m", "q3_x")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --quant: 'q3_x' is not supported; supported: q4_k_m, q5_k_m, q8_0, f16"
    ]


def test_quant_takes_several_values_in_either_form():
    assert parse_args(["--run", "r", "--quant", "q8_0", "Q4_K_M", "--threads", "1"]).quant == [
        "q8_0",
        "q4_k_m",
    ]
    assert parse_args(["--quant=q5_k_m,f16", "--run", "r"]).quant == ["q5_k_m", "f16"]
    assert parse_args(["--quant", "q8_0,q8_0"]).quant == ["q8_0"]
    assert parse_args([]).quant == ["q4_k_m"]
    with pytest.raises(ConfigError, match="give at least one"):
        parse_args(["--quant", "--run", "r"])
    with pytest.raises(ConfigError, match="unknown key 'quantize'"):
        parse_args(["--quantize", "q8_0"])


def test_find_gguf_prefers_the_canonical_name_then_the_newest(tmp_path):
    run = tmp_path / "myrun"
    run.mkdir()
    assert find_gguf(run) is None
    old = run / "renamed-q4_k_m.gguf"
    old.write_bytes(b"x")
    assert find_gguf(run) == old
    canonical = run / "myrun-q4_k_m.gguf"
    canonical.write_bytes(b"x")
    assert find_gguf(run, "Q4_K_M") == canonical
    assert find_gguf(run, "q8_0") is None
    with pytest.raises(ExportError, match="supported: q4_k_m"):
        find_gguf(run, "q2")


def test_disk_check_fails_before_writing(tmp_path):
    check_disk(tmp_path, 1)
    with pytest.raises(ExportError, match="not enough disk space"):
        check_disk(tmp_path, 10**18)
    # merged/ + F16 at 2 bytes a weight each, plus Q4_K_M and Q8_0, plus 5%
    assert export_bytes(10**9, ["q4_k_m", "q8_0", "f16"]) == int(10**9 * (4 + 6.5 / 8 + 8.5 / 8) * 1.05)


def test_agreement_gate(tmp_path):
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    good = {"teacher_forced_agreement": 0.9, "example": {"gguf": "a", "merged": "a"}}
    check_agreement({"q4_k_m": good}, 0.75)
    bad = {"teacher_forced_agreement": 0.1, "example": {"gguf": "zzzz", "merged": "Open Settings"}}
    with pytest.raises(ExportError, match="q8_0: the GGUF agrees with the merged model on only 10%"):
        check_agreement({"q4_k_m": good, "q8_0": bad}, 0.75)


def _sdist(path: Path, version: str) -> Path:
    """A tarball with the llama-cpp-python sdist's layout: the converter's files and some that are not."""
    prefix = f"llama_cpp_python-{version}"
    files = {
        "vendor/llama.cpp/convert_hf_to_gguf.py": b"print('convert')\n",
        "vendor/llama.cpp/conversion/llama.py": b"# model classes\n",
        "vendor/llama.cpp/gguf-py/gguf/__init__.py": b"# gguf\n",
        "vendor/llama.cpp/src/llama.cpp": b"// not needed\n",
        "vendor/llama.cpp/convert_lora_to_gguf.py": b"# the adapter converter\n",
        "vendor/llama.cpp/tools/server/server.cpp": b"// not needed\n",
        "llama_cpp/llama.py": b"# not needed\n",
        ".git/modules/vendor/llama.cpp/HEAD": b"0123abcd\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_keeps_only_the_converters(tmp_path):
    sdist = _sdist(tmp_path / "llama_cpp_python-9.9.9.tar.gz", "9.9.9")
    target = tmp_path / "cache" / "llama.cpp-convert-9.9.9"
    source = extract(sdist, target)
    kept = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert kept == [
        SOURCE_FILE,
        "conversion/llama.py",
        "convert_hf_to_gguf.py",
        "convert_lora_to_gguf.py",
        "gguf-py/gguf/__init__.py",
    ]
    assert source["llama_cpp_commit"] == "0123abcd"
    # an sdist passed as --converter-dir lands in the same versioned cache folder
    folder, info = converter(str(sdist), tmp_path / "cache2")
    assert (
        folder == tmp_path / "cache2" / "llama.cpp-convert-9.9.9"
        and (folder / "convert_hf_to_gguf.py").is_file()
    )
    assert info["from"] == str(sdist)


def test_converter_dir_must_hold_the_converter(tmp_path):
    with pytest.raises(ExportError, match=r"--converter-dir .*: expected convert_hf_to_gguf.py and gguf-py/"):
        converter(str(tmp_path), tmp_path / "cache")


def test_failed_download_says_how_to_work_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # what pip sees on a machine with no network
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    with pytest.raises(ExportError) as err:
        converter("", tmp_path / "cache")
    message = str(err.value)
    assert message.startswith("could not download the llama-cpp-python")
    assert "pass --converter-dir" in message and "\n" not in message
    assert not list((tmp_path / "cache").glob("llama.cpp-convert-*"))  # nothing half-made is cached
