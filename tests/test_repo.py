"""The front door stays true: README commands, .ci/run and the justfile agree."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = {"setup", "demo", "test", "lint", "data", "train", "export", "serve", "eval", "bench"}


def _fenced(root) -> list[tuple[str, str]]:
    """(language, body) of every fenced block in the README, indented fences included."""
    blocks, lang, body = [], None, []
    for line in (root / "README.md").read_text().splitlines():
        fence = re.fullmatch(r"\s*```(\w*)\s*", line)
        if fence and lang is None:
            lang, body = fence.group(1), []
        elif fence:
            blocks.append((lang, "\n".join(body) + "\n"))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, "README.md has an unclosed code fence"
    return blocks


def _readme_blocks(root) -> list[str]:
    """The shell blocks of the README (fenced as bash, sh or nothing)."""
    return [body for lang, body in _fenced(root) if lang in ("bash", "sh", "")]


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


def _readme_commands(root) -> list[tuple[str, str]]:
    """(module, rest of the line) of every `python -m MODULE ...` in the README's shell blocks."""
    text = "\n".join(_readme_blocks(root)).replace("\\\n", " ")
    return re.findall(r"python -m ([a-z][\w.]*)([^\n]*)", text)


def test_every_python_command_in_the_readme_takes_the_flags_it_shows(root):
    helps: dict[str, str] = {}
    commands = _readme_commands(root)
    assert {m for m, _ in commands} >= {"data", "train", "export", "run", "run.serve", "eval", "run.pipeline"}
    for module, rest in commands:
        if module not in helps:
            out = subprocess.run(
                [sys.executable, "-m", module, "--help"], cwd=root, capture_output=True, text=True
            )
            assert out.returncode == 0, f"python -m {module} --help: {out.stderr[-500:]}"
            helps[module] = out.stdout
        for flag in re.findall(r"(?<![\w-])--([a-z][\w-]*)", rest):
            if flag != "help":
                assert f"--{flag} " in helps[module], f"README: python -m {module} has no --{flag}"


def _readme_python(root) -> list[str]:
    return [body for lang, body in _fenced(root) if lang == "python"]


@pytest.mark.model
def test_readme_python_examples_run_and_answer_within_the_schema(root, monkeypatch, capsys):
    from data.embedded import smollm2_gguf
    from data.schema import validate_output

    blocks = _readme_python(root)
    assert len(blocks) == 3
    monkeypatch.chdir(root)
    # The examples load the default run's export; the shipped base GGUF stands in for it here.
    exported = "outputs/smollm2-135m-cpu/smollm2-135m-cpu-q4_k_m.gguf"
    assert all(exported in b for b in blocks[:2])
    engine_block, plain_block = (b.replace(exported, str(smollm2_gguf())) for b in blocks[:2])
    scope: dict = {}
    exec(compile(engine_block, "README.md (engine example)", "exec"), scope)
    assert scope["result"].ok or scope["result"].error
    assert capsys.readouterr().out.strip()
    exec(compile(plain_block, "README.md (llama-cpp-python example)", "exec"), {})
    answer = json.loads(capsys.readouterr().out)
    assert validate_output(answer) == []
    # The OpenAI-client example against the real server on a free port, the same engine behind it.
    from run.api import create_app
    from run.serve import in_background

    with in_background(create_app(scope["engine"], ui=False, max_tokens=256)) as port:
        client_block = blocks[2].replace("127.0.0.1:7860", f"127.0.0.1:{port}")
        exec(compile(client_block, "README.md (OpenAI client example)", "exec"), {})
    assert validate_output(json.loads(capsys.readouterr().out)) == []


def test_readme_lists_exactly_the_api_response_fields(root):
    from run.api import ProcedureResponse

    text = (root / "README.md").read_text()
    block = text.split("<!-- api-fields -->")[1].split("<!-- /api-fields -->")[0]
    listed = set(re.findall(r"^- `(\w+)`(?: and `(\w+)`)?:", block, flags=re.M))
    names = {name for pair in listed for name in pair if name}
    assert names == set(ProcedureResponse.model_fields)
