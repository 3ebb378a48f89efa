"""The GPU bundle and its check: wheels repacked without what training never loads, a size limit,
and a dry run of `just gpu-check` that installs the real bundle for Python 3.12 and runs every step."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from train.gpu_bundle import PACKAGES, STRIP, BundleError, build, pins, strip
from train.gpu_check import main as gpu_check


def _wheel(tmp_path, files: dict[str, bytes]):
    """A real wheel built with `wheel pack` from a folder holding `files`."""
    root = tmp_path / "demo_pkg-1.0"
    info = root / "demo_pkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo_pkg\nVersion: 1.0\n")
    (info / "WHEEL").write_text(
        "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    out = tmp_path / "dist"
    out.mkdir()
    subprocess.run(
        [sys.executable, "-m", "wheel", "pack", "-d", str(out), str(root)], check=True, capture_output=True
    )
    return next(out.glob("*.whl"))


def test_strip_repacks_a_wheel_that_still_installs(tmp_path):
    wheel = _wheel(tmp_path, {"demo_pkg/__init__.py": b"X = 1\n", "studio/app.js": b"x" * 5000})
    new, dropped = strip(wheel, ["studio/*"])
    assert dropped == 1
    names = zipfile.ZipFile(new).namelist()
    assert "studio/app.js" not in names and "demo_pkg/__init__.py" in names
    record = zipfile.ZipFile(new).read("demo_pkg-1.0.dist-info/RECORD").decode()
    assert "studio/app.js" not in record  # RECORD rewritten, so pip installs it cleanly
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--target",
            str(site),
            str(new),
        ],
        check=True,
    )
    assert (site / "demo_pkg" / "__init__.py").is_file() and not (site / "studio").exists()


def test_every_package_is_pinned_to_this_environment_and_strip_rules_name_real_packages():
    pinned = pins()
    assert len(pinned) == len(PACKAGES) and all("==" in p for p in pinned)
    assert set(STRIP) <= set(PACKAGES)


def test_a_bundle_over_the_limit_is_an_error(tmp_path):
    with pytest.raises(BundleError, match="over the 0 MiB"):
        build(tmp_path / "wheels", limit_mib=0.0)


def test_gpu_check_without_a_bundle_says_what_to_run(tmp_path, capsys):
    assert gpu_check(["--bundle", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "run `just gpu-bundle` first" in capsys.readouterr().err


@pytest.mark.model
def test_gpu_check_dry_run_installs_the_real_bundle_and_runs_every_step(tmp_path):
    bundle = tmp_path / "wheels"
    assert build(bundle, limit_mib=60.0) < 60.0
    assert gpu_check(["--dry-run", "--bundle", str(bundle), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [s["step"] for s in summary["steps"]] == ["install", "imports", "tests", "bench"]
    assert summary["ok"] and all(s["ok"] for s in summary["steps"])
    assert "needs a CUDA GPU" in (tmp_path / "out" / "bench.log").read_text()
