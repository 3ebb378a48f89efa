"""Which adapter answers a request: by name, else by the context's domain, else the default."""

from __future__ import annotations

import pytest

from data.settings import ConfigError, parse_config
from run.adapters import AdapterError, Adapters, domain_of, parse_specs
from run.boundary import InputError
from run.config import EngineConfig


def test_the_domain_of_a_context_comes_from_its_app():
    assert domain_of({"app": "Google Account"}) == "accounts_passwords"
    assert domain_of({"app": "google account"}) == "accounts_passwords"  # case does not matter
    assert domain_of({"app": "An App Nobody Wrote About"}) is None
    assert domain_of({"platform": "ios"}) is None and domain_of(None) is None


def test_a_request_picks_by_name_then_domain_then_default():
    adapters = Adapters(llama=None, loaded={"accounts_passwords": object(), "travel": object()})
    assert adapters.choose("travel", {"app": "Google Account"}) == "travel"
    assert adapters.choose(None, {"app": "Google Account"}) == "accounts_passwords"
    assert adapters.choose(None, {"app": "Unknown"}) is None
    adapters.default = "travel"
    assert adapters.choose(None, None) == "travel"
    with pytest.raises(AdapterError, match="'banking' is not loaded; loaded: accounts_passwords, travel"):
        adapters.choose("banking", None)
    assert issubclass(AdapterError, InputError)  # a 422 in the API, an error line in the CLI


def test_adapter_specs_are_checked_with_the_fix(tmp_path):
    lora = tmp_path / "a.gguf"
    lora.write_bytes(b"GGUF")
    assert parse_specs([f"travel={lora}"]) == {"travel": lora}
    with pytest.raises(ConfigError, match="write NAME=FILE"):
        parse_specs([str(lora)])
    with pytest.raises(ConfigError, match="not found; `python -m export --run RUN --lora` writes it"):
        parse_specs(["travel=missing.gguf"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_specs([f"travel={lora}", f"travel={lora}"])


def test_the_adapter_flag_repeats():
    config = parse_config(EngineConfig, ["--adapter", "a=x.gguf", "--adapter", "b=y.gguf"])
    assert config.adapter == ["a=x.gguf", "b=y.gguf"]
