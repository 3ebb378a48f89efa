"""The pipeline runner: skip unchanged stages, resume unfinished ones, name a failing stage."""

import sys
from pathlib import Path

import pytest

from data.settings import ConfigError
from run.pipeline import (
    PipelineConfig,
    Stage,
    StageError,
    Stamps,
    code_files,
    fingerprint,
    main,
    run_stage,
    stages,
)

REPO = Path(__file__).resolve().parents[2]

# A stage in miniature: copies in.txt to out.txt, records its argv, fails while `fail` exists.
COPY = (
    "import sys, pathlib; pathlib.Path('argv.txt').write_text(' '.join(sys.argv[1:]));"
    "p = pathlib.Path('fail');"
    "(print('error: in.txt:1: bad value; fix it') or sys.exit(3)) if p.exists() else None;"
    "pathlib.Path('out.txt').write_text(pathlib.Path('in.txt').read_text())"
)


@pytest.fixture
def stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("in.txt").write_text("one")
    return Stage(
        "copy", [sys.executable, "-c", COPY], ["in.txt"], ["out.txt"], fresh_flags=["--resume", "false"]
    )


def _run(stage: Stage, force: bool = False) -> str:
    state = Path(".pipeline")
    return run_stage(stage, [stage], 1, Stamps(state), state, force)


def test_rerun_skips_until_an_input_or_output_changes(stage, capsys):
    assert _run(stage) == "ran"
    assert Path("out.txt").read_text() == "one"
    assert _run(stage) == "skipped"
    assert "skipped, its inputs are unchanged" in capsys.readouterr().out
    Path("in.txt").write_text("two")
    assert _run(stage) == "ran"
    assert Path("out.txt").read_text() == "two"
    Path("out.txt").unlink()
    assert _run(stage) == "ran"  # a missing output is not trusted to a stamp
    assert _run(stage, force=True) == "ran"


def test_failure_names_the_stage_and_the_cause_and_the_log_keeps_the_output(stage):
    Path("fail").touch()
    with pytest.raises(StageError, match=r"stage 'copy' failed \(exit 3\): error: in.txt:1: bad value"):
        _run(stage)
    assert "error: in.txt:1: bad value" in Path(".pipeline/copy.log").read_text()
    assert Stamps(Path(".pipeline")).get("copy")["state"] == "started"


def test_unfinished_stage_resumes_but_changed_inputs_start_fresh(stage):
    Path("fail").touch()
    with pytest.raises(StageError):
        _run(stage)
    assert Path("argv.txt").read_text().endswith("--resume false")  # first run: fresh
    Path("fail").unlink()
    assert _run(stage) == "ran"
    assert "--resume" not in Path("argv.txt").read_text()  # same inputs: resume
    Path("in.txt").write_text("changed")
    assert _run(stage) == "ran"
    assert Path("argv.txt").read_text().endswith("--resume false")


def test_main_reports_the_failing_stage_and_how_to_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    config = PipelineConfig(data_config=str(tmp_path / "missing.yaml"), state_dir=str(tmp_path), serve=False)
    assert main(config) == 1
    err = capsys.readouterr().err
    assert "stage 'data' failed (exit 2)" in err and "missing.yaml" in err
    assert "resume with `just demo` (it starts at data)" in err
    assert (tmp_path / "data.log").is_file()


def test_unknown_from_stage_is_a_config_error():
    with pytest.raises(ConfigError, match="pick one of data, train, export, eval"):
        main(PipelineConfig(from_stage="deploy", serve=False))


def test_a_stage_fingerprints_the_modules_its_entry_imports_from_other_folders(monkeypatch):
    monkeypatch.chdir(REPO)
    inputs = {s.name: s.inputs for s in stages(PipelineConfig())}
    assert {"export/__main__.py", "export/__init__.py", "train/base.py"} <= set(inputs["export"])
    assert {"eval/__main__.py", "export/__init__.py", "data/schema.py", "data/prompt.py"} <= set(
        inputs["eval"]
    )
    assert {"run/engine.py", "run/__init__.py"} <= set(inputs["eval"])  # eval answers through the engine
    assert "train/__main__.py" not in inputs["export"]


# A project in miniature: export imports train and data (inside a function, as the stages import
# heavy code), and its package imports relatively; train/unused.py is imported by nothing.
FAKE = {
    "configs/tiny.yaml": "run: tiny\n",
    "data/__init__.py": "",
    "data/__main__.py": "",
    "data/helpers.py": "",
    "train/__init__.py": "",
    "train/__main__.py": "from train.base import BASE\n",
    "train/base.py": "BASE = 1\n",
    "train/unused.py": "",
    "export/__init__.py": "from .naming import NAME\n",
    "export/naming.py": "from . import units\n\nNAME = 'x'\n",
    "export/units.py": "",
    "export/__main__.py": "import json\n\ndef main():\n    from train import base\n"
    "    from data.helpers import f\n",
    "eval/__init__.py": "",
    "eval/__main__.py": "import data.helpers\nimport numpy\n",
}


@pytest.fixture
def fake_project(tmp_path, monkeypatch):
    for name, text in FAKE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_code_files_follow_every_kind_of_import(fake_project):
    names = ["data/__init__", "data/helpers", "export/__init__", "export/__main__", "export/naming"]
    names += ["export/units", "train/__init__", "train/base"]
    assert code_files("export.__main__") == [Path(f"{n}.py") for n in names]
    assert code_files("eval.__main__", fake_project) == sorted(
        fake_project / f"{n}.py" for n in ("data/__init__", "data/helpers", "eval/__init__", "eval/__main__")
    )
    with pytest.raises(ValueError, match="train.missing: no such module"):
        code_files("train.missing")


def test_editing_a_module_from_another_folder_reruns_the_stage_and_an_unrelated_one_does_not(fake_project):
    config = PipelineConfig(train_config="configs/tiny.yaml", data_config="configs/tiny.yaml")

    def export_key() -> str:
        return fingerprint(next(s for s in stages(config) if s.name == "export"))

    before = export_key()
    Path("train/unused.py").write_text("CHANGED = True\n")
    assert export_key() == before
    Path("train/base.py").write_text("BASE = 2\n")
    assert export_key() != before
