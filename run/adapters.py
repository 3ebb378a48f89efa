"""Domain adapters: GGUF LoRA files loaded once beside the base model, one chosen per request.

`python -m export --run outputs/<run>-<domain> --lora` writes an adapter as a GGUF LoRA;
`--adapter NAME=FILE` (repeatable) loads it at start-up with llama.cpp's own adapter calls
(llama_adapter_lora_init). A request then uses one adapter, switched on the same context with
llama_set_adapters_lora, so a switch costs no reload:

1. the adapter it names explicitly (`adapter`), which must be loaded;
2. else the adapter named after the context's domain: the dataset's domain for the context's
   app (`domain_of`, from the packaged records), when an adapter of that name is loaded;
3. else `--default-adapter`, or none: the model alone.

A switch empties the KV cache (its entries were computed with the other adapter's weights).
"""

from __future__ import annotations

import ctypes
import functools
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.settings import ConfigError
from run.boundary import InputError


def parse_specs(specs: list[str]) -> dict[str, Path]:
    """`NAME=FILE` entries -> {name: path}; bad entries are a ConfigError naming the entry."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name = name.strip()
        if not sep or not name or not path:
            raise ConfigError(
                f"--adapter {spec!r}: write NAME=FILE, e.g. banking_payments=outputs/x-lora-f16.gguf"
            )
        if name in out:
            raise ConfigError(f"--adapter {name}: given twice")
        if not Path(path).is_file():
            raise ConfigError(
                f"--adapter {name}: {path} not found; `python -m export --run RUN --lora` writes it"
            )
        out[name] = Path(path)
    return out


@functools.cache
def _app_domains() -> dict[str, str]:
    """App name (casefolded) -> the domain most of the packaged records with that app are in."""
    raw = Path(__file__).resolve().parent.parent / "data" / "raw"
    votes: dict[str, Counter] = {}
    for path in sorted(raw.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            app = (record["input"].get("context") or {}).get("app")
            if app:
                votes.setdefault(app.casefold(), Counter())[record["meta"]["domains"][0]] += 1
    return {app: count.most_common(1)[0][0] for app, count in votes.items()}


def domain_of(context: dict[str, Any] | None) -> str | None:
    """The dataset domain of the context's app, or None for an app the dataset does not know."""
    app = (context or {}).get("app")
    return _app_domains().get(app.casefold()) if isinstance(app, str) else None


class AdapterError(InputError):
    """A request named an adapter that is not loaded (a 422 in the API, like other bad input)."""


@dataclass
class Adapters:
    """The adapters loaded on one llama.cpp model, and the one active on its context."""

    llama: Any
    loaded: dict[str, Any] = field(default_factory=dict)  # name -> llama_adapter_lora_p
    paths: dict[str, Path] = field(default_factory=dict)
    default: str | None = None
    active: str | None = None

    @classmethod
    def load(cls, llama: Any, specs: list[str], default: str = "") -> Adapters:
        import llama_cpp

        adapters = cls(llama, paths=parse_specs(specs))
        if default and default not in adapters.paths:
            known = ", ".join(adapters.paths) or "none loaded"
            raise ConfigError(f"--default-adapter {default}: not one of the --adapter names ({known})")
        adapters.default = default or None
        for name, path in adapters.paths.items():
            pointer = llama_cpp.llama_adapter_lora_init(llama.model, str(path).encode("utf-8"))
            if not pointer:
                adapters.close()
                raise ConfigError(
                    f"--adapter {name}: llama.cpp could not load {path} as a LoRA of this model "
                    "(a LoRA GGUF trained on the same base is needed)"
                )
            adapters.loaded[name] = pointer
        return adapters

    def choose(self, requested: str | None, context: dict[str, Any] | None) -> str | None:
        """The adapter for one request (see the module docstring); raises AdapterError."""
        if requested:
            if requested not in self.loaded:
                known = ", ".join(self.loaded) or "none are loaded"
                raise AdapterError(f"adapter: {requested!r} is not loaded; loaded: {known}")
            return requested
        if not self.loaded:  # nothing to choose from: no need to read the app's domain
            return None
        domain = domain_of(context)
        return domain if domain in self.loaded else self.default

    def activate(self, name: str | None) -> bool:
        """Make `name` (None: no adapter) the active one; True when that changed the weights."""
        import llama_cpp

        if name == self.active:
            return False
        if name is None:
            status = llama_cpp.llama_set_adapters_lora(self.llama.ctx, None, 0, None)
        else:
            pointers = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self.loaded[name])
            scales = (ctypes.c_float * 1)(1.0)
            status = llama_cpp.llama_set_adapters_lora(self.llama.ctx, pointers, 1, scales)
        if status != 0:
            raise RuntimeError(f"llama_set_adapters_lora failed ({status}) for adapter {name!r}")
        self.active = name
        self.llama.n_tokens = 0  # the cached keys and values came from the other weights
        return True

    def listing(self) -> list[dict[str, Any]]:
        return [{"name": n, "path": str(p), "default": n == self.default} for n, p in self.paths.items()]

    def close(self) -> None:
        import llama_cpp

        for pointer in self.loaded.values():
            llama_cpp.llama_adapter_lora_free(pointer)
        self.loaded.clear()
