"""The front door stays true: README commands, .ci/run and the justfile agree."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = {"setup", "demo", "test", "lint", "data", "train", "export", "serve", "eval", "bench"}


def _readme_blocks(root) -> list[str]:
    return re.findall(r"```(?:bash|sh)?\n(.*?)```", (root / "README.md").read_text(), re.S)


def test_readme_starts_with_the_two_commands(root):
    blocks = _readme_blocks(root)
    assert "just demo" in blocks[0] and "just test" in blocks[1]


def test_ci_runs_exactly_the_readme_test_command(root):
    test_command = _readme_blocks(root)[1].strip()
    ci = (root / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()


def _just() -> str:
    beside = Path(sys.executable).parent / "just"  # installed into .venv by the dev extra
    found = str(beside) if beside.exists() else shutil.which("just")
    if not found:
        pytest.skip("just is not on PATH")
    return found


def test_justfile_has_every_recipe(root):
    listing = subprocess.run([_just(), "--list"], cwd=root, capture_output=True, text=True, check=True).stdout
    names = {line.split()[0] for line in listing.splitlines()[1:] if line.strip()}
    assert names >= RECIPES, RECIPES - names


def test_every_just_recipe_in_the_readme_exists(root):
    listing = subprocess.run(
        [_just(), "--summary"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    names = set(listing.split())
    used = set(re.findall(r"\bjust ([a-z][\w-]*)", (root / "README.md").read_text()))
    assert used <= names, used - names
