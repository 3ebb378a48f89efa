"""`python -m run` end to end: the answer on stdout, tokens and a summary on stderr, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data.schema import validate_output

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "run", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.model
def test_json_answer_on_stdout_and_streamed_tokens_on_stderr():
    done = run_cli(
        "turn on dark mode",
        "--platform",
        "android",
        "--json",
        "--max-tokens",
        "256",
        "--selfcheck-rounds",
        "1",
    )
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert validate_output(output) == []
    assert "run: model " in done.stderr and "[draft] {" in done.stderr and "tokens in" in done.stderr


@pytest.mark.model
def test_numbered_answer_and_a_rule_refusal():
    done = run_cli("how", "do", "I", "hack", "into", "my", "ex's", "gmail", "--selfcheck", "false")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Cannot help with this (account takeover)")
    assert "refused by the rules" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give the intent"),
        (("hi", "--colour", "red"), "unknown key 'colour'. Valid keys:"),
        (("hi", "--max-tokens", "many"), "--max-tokens: expected int"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line(args, message):
    done = run_cli(*args)
    assert done.returncode == 2
    assert message in done.stderr and done.stdout == ""


@pytest.mark.model
def test_a_context_the_schema_rejects_exits_2():
    done = run_cli("hi", "--locale", "english")
    assert done.returncode == 2
    assert "error: context.locale:" in done.stderr


def test_a_missing_model_file_is_one_error_line_not_a_traceback(tmp_path):
    missing = tmp_path / "missing.gguf"
    done = run_cli("mute a chat", "--model", str(missing))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: --model {missing}: no such file; pass a .gguf path, or nothing for the default"
    ]


def test_every_stage_error_is_a_user_error():
    """One base class, so `user_errors()` catches a new stage's errors without being told."""
    from data.__main__ import DataError
    from data.embedded import MissingModelError
    from data.settings import ConfigError, UserError
    from eval.human import HumanKitError
    from eval.references import EvalDataError
    from eval.systems import SpecError
    from export import ExportError
    from run.boundary import InputError
    from run.engine import ModelError
    from run.pipeline import StageError
    from train.base import BaseModelError
    from train.dataset import TrainDataError
    from train.gpu_bundle import BundleError
    from train.trainer import TrainError

    kinds = (ConfigError, DataError, MissingModelError, HumanKitError, EvalDataError, SpecError, ExportError)
    kinds += (InputError, ModelError, StageError, BaseModelError, TrainDataError, BundleError, TrainError)
    assert all(issubclass(k, UserError) for k in kinds)
