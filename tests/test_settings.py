"""Stage configs: YAML file, flag overrides, and errors that list the valid keys."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from data.settings import ConfigError, dump_config, option, parse_config


@dataclass
class Demo:
    """Demo config."""

    name: str = option("run", "a name")
    steps: int = option(10, "how many")
    lr: float = option(1e-4, "learning rate")
    packing: bool = option(False, "pack sequences")
    modules: list[str] = option(["q_proj", "v_proj"], "targets")


def test_defaults_file_then_flags(tmp_path):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("# python -m demo --config x.yaml\nsteps: 20\nmodules: [a, b, c]\n")
    config = parse_config(Demo, ["--config", str(cfg), "--lr", "0.01", "--packing", "--name=z"])
    assert config == Demo(name="z", steps=20, lr=0.01, packing=True, modules=["a", "b", "c"])
    assert parse_config(Demo, ["--modules", "x,y"]).modules == ["x", "y"]


def test_later_config_files_override_earlier_ones(tmp_path):
    (tmp_path / "a.yaml").write_text("steps: 20\nname: a\n")
    (tmp_path / "b.yaml").write_text("steps: 30\n")
    config = parse_config(Demo, ["--config", str(tmp_path / "a.yaml"), "--config", str(tmp_path / "b.yaml")])
    assert (config.name, config.steps) == ("a", 30)


def test_unknown_keys_list_the_valid_ones(tmp_path):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("stepz: 3\n")
    with pytest.raises(ConfigError, match=r"x.yaml: unknown key 'stepz'. Valid keys: name, steps, lr"):
        parse_config(Demo, ["--config", str(cfg)])
    with pytest.raises(ConfigError, match=r"command line: unknown key 'lrr'"):
        parse_config(Demo, ["--lrr", "1"])


def test_bad_values_and_files_are_clear(tmp_path):
    with pytest.raises(ConfigError, match=r"--steps: expected int, got 'many'"):
        parse_config(Demo, ["--steps", "many"])
    with pytest.raises(ConfigError, match="config file not found"):
        parse_config(Demo, ["--config", str(tmp_path / "missing.yaml")])


def test_resolved_config_round_trips(tmp_path):
    config = Demo(steps=3)
    dump_config(config, tmp_path / "config.yaml")
    assert parse_config(Demo, ["--config", str(tmp_path / "config.yaml")]) == config


def test_library_versions_name_python_and_each_package():
    from data.settings import library_versions

    out = library_versions(["pyyaml", "no-such-package-xyz"])
    assert out["python"].count(".") == 2 and out["machine"]
    assert out["pyyaml"][0].isdigit() and out["no-such-package-xyz"] == "not installed"


def test_user_errors_become_one_line_and_exit_code_2(capsys):
    from data.settings import user_errors

    class StageError(ValueError):
        pass

    for error in (ConfigError("bad key"), StageError("bad file")):
        with pytest.raises(SystemExit) as stop, user_errors(StageError):
            raise error
        assert stop.value.code == 2
        assert capsys.readouterr().err == f"error: {error}\n"
    with pytest.raises(KeyError), user_errors(StageError):  # a bug keeps its traceback
        raise KeyError("x")
