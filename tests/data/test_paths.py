"""data/paths.py is the one home of artifact paths: its names, and no stage spelling them itself."""

from __future__ import annotations

import ast
from pathlib import Path

from data.paths import DEFAULT_RUN, EVAL, OUTPUTS, PIPELINE, eval_dir, gguf_file, gguf_name, run_dir

SKIPPED_DIRS = {"tests", "outputs", "build"}  # and every hidden folder (.venv, .gpu, ...)


def test_run_folders_gguf_names_and_eval_folders():
    assert run_dir("r") == OUTPUTS / "r" == Path("outputs/r")
    assert run_dir("r", "banking") == Path("outputs/r-banking")
    assert run_dir("r", root="elsewhere") == Path("elsewhere/r")
    assert gguf_name("r", "q8_0") == "r-q8_0.gguf"
    # Named after the folder, so a domain adapter's GGUF carries its domain.
    assert gguf_file(run_dir("r", "banking")) == Path("outputs/r-banking/r-banking-q4_k_m.gguf")
    assert eval_dir(DEFAULT_RUN) == EVAL / DEFAULT_RUN == Path("outputs/eval/smollm2-135m-cpu")
    assert Path("outputs/.pipeline") == PIPELINE


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring constants: prose about outputs/<run> is not a path spelled in code."""
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)]
    heads = [s.body[0] for s in scopes if s.body and isinstance(s.body[0], ast.Expr)]
    return {id(h.value) for h in heads if isinstance(h.value, ast.Constant)}


def _spellings(path: Path) -> list[str]:
    """'line: text' of every string literal (f-string parts too) that spells an artifact path."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            text = node.value
            if text == "outputs" or text.startswith("outputs/") or "-q4_k_m.gguf" in text:
                found.append((node.lineno, text[:60]))
    return [f"{line}: {text!r}" for line, text in sorted(found)]


def _sources(root: Path) -> dict[str, list[str]]:
    files = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(p.startswith(".") or p in SKIPPED_DIRS for p in rel.parts[:-1]):
            continue
        files[rel.as_posix()] = _spellings(path)
    return files


def test_no_stage_spells_an_artifact_path(root):
    spelled = {
        f"{name}:{where}"
        for name, found in _sources(root).items()
        if name != "data/paths.py"
        for where in found
    }
    assert not spelled, f"ask data/paths.py for these paths instead: {sorted(spelled)}"


def test_the_scan_finds_a_spelling(tmp_path):
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "x.py").write_text('A = Path("outputs") / "r"\nB = f"{r}-q4_k_m.gguf"\n')
    ok = '"""Writes to outputs/<run>."""\n\ndef f():\n    """outputs/<run>/x."""\n    return OUTPUTS / "r"\n'
    (tmp_path / "stage" / "ok.py").write_text(ok)
    assert _sources(tmp_path) == {"stage/ok.py": [], "stage/x.py": ["1: 'outputs'", "2: '-q4_k_m.gguf'"]}
