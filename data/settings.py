"""Typed stage configs: dataclass defaults, `--config file.yaml`, `--key value` overrides."""

from __future__ import annotations

import dataclasses
import platform
import sys
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class UserError(Exception):
    """The base of every error a user can fix: the message says what, where and how.

    `user_errors()` turns any of them into one `error:` line and exit code 2; anything else is a
    bug and keeps its traceback. Each stage's errors subclass this (and the builtin they are).
    """


class ConfigError(UserError, ValueError):
    """A config problem a user can fix: the message says what, where and how."""


def option(default: Any, help: str, **kwargs: Any) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field with a default and the help string every config field must carry."""
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Coerce a YAML or command-line value to the field's declared type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()] if value else []
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0] if args else str, where) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint in (int, float, str):
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from None
    return value


def _check_keys(cls: type, keys: typing.Iterable[str], where: str) -> None:
    valid = [f.name for f in dataclasses.fields(cls)]
    for key in keys:
        if key not in valid:
            raise ConfigError(f"{where}: unknown key {key!r}. Valid keys: {', '.join(valid)}")


@contextmanager
def user_errors(*kinds: type[Exception]) -> Iterator[None]:
    """Every command's error contract: a UserError (or one of `kinds`) becomes one
    `error: ...` line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except (UserError, *kinds) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (pass an existing --config path)")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value at the top level")
    return loaded


def parse_config(cls: type[T], argv: list[str] | None, positional: str | None = None) -> T:
    """Build `cls` from defaults, then `--config FILE`, then `--key value` flags.

    `positional` names a list field that bare (non-flag) arguments are appended to.
    `--help` prints every field with its default and help string.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    types_ = _field_types(cls)
    if "-h" in argv or "--help" in argv:
        print(render_help(cls, positional))
        raise SystemExit(0)
    values: dict[str, Any] = {}
    # Several --config files merge left to right (`just train --config other.yaml` puts the
    # recipe's default first), then flags override them all.
    while "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise ConfigError("--config needs a path to a YAML file")
        path = argv[i + 1]
        del argv[i : i + 2]
        loaded = load_yaml(path)
        _check_keys(cls, loaded, path)
        values.update({k: _coerce(v, types_[k], f"{path}: {k}") for k, v in loaded.items()})
    bare: list[str] = []
    flagged: set[str] = set()  # a list option given twice on the command line collects both
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            bare.append(arg)
            i += 1
            continue
        key = arg[2:].replace("-", "_")
        if "=" in key:
            key, raw = key.split("=", 1)
            i += 1
        elif types_.get(key) is bool and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
            raw = "true"
            i += 1
        else:
            if i + 1 >= len(argv):
                raise ConfigError(f"--{key} needs a value")
            raw = argv[i + 1]
            i += 2
        _check_keys(cls, [key], "command line")
        value = _coerce(raw, types_[key], f"--{key.replace('_', '-')}")
        repeated = key in flagged and typing.get_origin(types_[key]) is list
        values[key] = values[key] + value if repeated else value
        flagged.add(key)
    if bare:
        if positional is None:
            raise ConfigError(f"unexpected argument {bare[0]!r}; options are --key value")
        values[positional] = bare
    return cls(**values)


def render_help(cls: type, positional: str | None = None) -> str:
    """One line per field: name, default and help."""
    doc = (sys.modules[cls.__module__].__doc__ or "").strip()
    lines = [doc, "", "options (also valid as keys in --config FILE.yaml):"]
    if positional:
        lines.insert(1, f"\npositional arguments fill --{positional.replace('_', '-')}")
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        flag = "--" + f.name.replace("_", "-")
        lines.append(f"  {flag:<24} {f.metadata.get('help', '')} (default: {default!r})")
    return "\n".join(lines)


def dump_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML next to the outputs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), encoding="utf-8")


def library_versions(packages: typing.Iterable[str]) -> dict[str, str]:
    """Python, the machine and the installed version of each package, recorded with every output."""
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
