"""The systems an eval compares: GGUF models through the run/ engine, the template baseline, the human gold.

A system spec (`--model`, `--systems`) is one of:
- `template`: the rule-based baseline, a fixed generic procedure filled from intent and context;
- `gold`: the references themselves, the upper bound (1.0 wherever a metric allows);
- `base`: the shipped SmolLM2-135M-Instruct GGUF zero-shot, with the prompt and grammar of serving;
- a `.gguf` file, or a run folder `outputs/<run>` (its q4_k_m export, via export.find_gguf).

Models run through `run.engine.Engine`, so they see the same prompt, grammar, safety rules and
self-check as in serving; ablations turn the grammar or the self-check off per call.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.paths import DEFAULT_QUANT, OUTPUTS, gguf_file
from data.schema import without_hidden
from data.settings import UserError
from eval.references import Example

# What each ablation turns off: the grammar and the self-check per call, the decoder's
# repetition control and the decoder itself (llama-cpp-python's GBNF sampler instead) by setting.
ABLATIONS = ("grammar", "selfcheck", "repetition", "decoder")
_ABLATED_SETTINGS = {"repetition": {"repetition": False}, "decoder": {"constraint": "gbnf"}}
# The template quotes at most this much of the intent, so that its step stays under the schema's
# 200-character limit with room for the words around it.
_INTENT_CHARS = 120


class SpecError(UserError, ValueError):
    """A system spec that names nothing usable; the message says what to pass instead."""


@dataclass
class Prediction:
    """One system's answer to one example, and its cost."""

    output: dict[str, Any] | None
    status: str = "ok"
    error: str | None = None
    refused_by: str | None = None
    tokens: int = 0
    latency_s: float = 0.0
    selfcheck_rounds: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _INTENT_CHARS else text[: _INTENT_CHARS - 3].rstrip() + "..."


def template_output(intent: str, context: dict[str, Any]) -> dict[str, Any]:
    """The template baseline: one fixed generic procedure, filled from the intent and context.

    It names nothing the context does not, always answers with a procedure (it never refuses),
    and writes English whatever the intent's language: the floor a trained model must clear.
    """
    app, platform = context.get("app"), context.get("platform")
    where = f" on your {platform} device" if platform else ""
    steps = [f'Open the "{app}" app{where}.' if app else "Open the app or website you use for this."]
    screen = context.get("current_screen")
    steps.append(f'Go to the "{screen}" screen.' if screen else "Go to the main menu or your profile.")
    steps += [
        f"Find the option for: {_short(intent)}",
        "Follow the instructions on the screen.",
        "Save your changes.",
    ]
    constraints = ["Make sure you are signed in to the right account."]
    if context.get("user_role") or context.get("permissions"):
        needs = context.get("user_role") or ", ".join(context["permissions"])
        constraints.append(f"You may need this role or these permissions: {needs}.")
    if context.get("version"):
        constraints.append(f"Menus can differ from version {context['version']}.")
    validation = ["Check that the change now shows in the app."]
    # The user's words can hold characters no answer may (an emoji, a zero-width space).
    steps, constraints = [without_hidden(s) for s in steps], [without_hidden(c) for c in constraints]
    return {"schema": "ordered_steps", "steps": steps, "constraints": constraints, "validation": validation}


class TemplateSystem:
    """The rule-based template baseline."""

    kind = "template"
    fingerprint = "template-v1"

    def predict(self, example: Example) -> Prediction:
        return Prediction(template_output(example.intent, example.context))

    def close(self) -> None:
        """Nothing to free."""


class GoldSystem:
    """The references as predictions: every metric's upper bound."""

    kind = "gold"
    fingerprint = "gold"

    def predict(self, example: Example) -> Prediction:
        return Prediction(example.output, refused_by="gold" if example.refusal else None)

    def close(self) -> None:
        """Nothing to free."""


def resolve_gguf(spec: str) -> Path:
    """The GGUF a model spec names: 'base', a .gguf file, or a run folder's q4_k_m export."""
    if spec == "base":
        from data.embedded import smollm2_gguf

        return smollm2_gguf()
    path = Path(spec)
    if path.is_file():
        if path.suffix != ".gguf":
            raise SpecError(f"--model {spec}: not a .gguf file; pass a GGUF, a run folder, base or template")
        return path
    if path.is_dir():
        try:
            from export import find_gguf

            found = find_gguf(path, DEFAULT_QUANT)
        except ImportError:  # no export stage: its naming convention, outputs/<run>/<run>-<quant>.gguf
            candidate = gguf_file(path, DEFAULT_QUANT)
            found = candidate if candidate.is_file() else None
        if found is None:
            raise SpecError(
                f"--model {spec}: no q4_k_m GGUF in that run folder; run `just export --run {path}` "
                "first, or pass --model base"
            )
        return found
    if path.parent.name == OUTPUTS.name:
        raise SpecError(
            f"--model {spec}: no such run folder; train and export it first (`just train`, `just export`), "
            "or pass --model base"
        )
    raise SpecError(
        f"--model {spec}: no such file or run folder; pass a .gguf, outputs/<run>, base, template or gold"
    )


class EngineSystem:
    """A GGUF through the run/ engine; `grammar` and `selfcheck` False are the ablations."""

    kind = "model"

    def __init__(
        self,
        gguf: Path,
        settings: dict[str, Any],
        grammar: bool = True,
        selfcheck: bool = True,
        by_domain: bool = False,
    ):
        self.gguf, self.settings = Path(gguf), settings
        self.grammar, self.selfcheck = grammar, selfcheck
        self.by_domain = by_domain  # answer each example with the adapter named after its domain
        self._engine = None

    @property
    def fingerprint(self) -> str:
        """What a cached answer depends on: the model file, every generation setting, and the code
        that answers (a decoder change must not reuse the answers of the decoder before it)."""
        import dataclasses

        from run.config import EngineConfig

        stat = self.gguf.stat()
        resolved = dataclasses.asdict(EngineConfig(**self.settings))  # serving's defaults count too
        knobs = ",".join(f"{k}={v}" for k, v in sorted(resolved.items()))
        model = f"{self.gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        for spec in self.settings.get("adapter", []):  # an adapter file rewritten is a new system
            adapter = Path(spec.partition("=")[2])
            model += f":{spec}:{adapter.stat().st_size}:{adapter.stat().st_mtime_ns}"
        flags = f"grammar={self.grammar}:selfcheck={self.selfcheck}:by_domain={self.by_domain}"
        return f"{model}:{knobs}:{flags}:code={_engine_code()}"

    def _load(self):
        if self._engine is None:  # loaded on first use: a fully cached run loads no model
            from run.config import EngineConfig
            from run.engine import Engine

            self._engine = Engine(EngineConfig(model=str(self.gguf), **self.settings))
        return self._engine

    def predict(self, example: Example) -> Prediction:
        from run.boundary import InputError

        engine = self._load()
        adapter = example.domain if self.by_domain and example.domain in engine.adapters.loaded else None
        try:
            result = engine.generate(
                example.intent,
                example.context or None,
                grammar=self.grammar,
                selfcheck=self.selfcheck,
                adapter=adapter,
            )
        except InputError as e:
            return Prediction(None, status="input", error=str(e))
        return Prediction(
            output=result.output,
            status=result.status,
            error=result.error,
            refused_by=result.refused_by,
            tokens=result.tokens,
            latency_s=round(result.latency_s, 3),
            selfcheck_rounds=result.selfcheck.rounds,
        )

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def system_name(spec: str) -> str:
    """A short, file-safe name for a spec: base, template, gold, the run folder's or the GGUF's name."""
    if spec in ("base", "template", "gold"):
        return spec
    path = Path(spec)
    return path.stem if path.suffix == ".gguf" else path.name


ADAPTERS = "adapters"  # the per-domain system: a base GGUF with one LoRA per domain (--adapter)


def build(
    spec: str, settings: dict[str, Any], ablate: tuple[str, ...] = (), adapters: tuple[str, ...] = ()
) -> Any:
    """The system for a spec; `ablate` names the engine features turned off. The `adapters` spec
    is `--adapter-base` with the `adapters` NAME=FILE LoRAs, each example answered by its domain's."""
    if spec == "template":
        return TemplateSystem()
    if spec == "gold":
        return GoldSystem()
    if spec.startswith(ADAPTERS + "="):
        base = spec.split("=", 1)[1]
        return EngineSystem(resolve_gguf(base), {**settings, "adapter": list(adapters)}, by_domain=True)
    for feature in ablate:
        settings = {**settings, **_ABLATED_SETTINGS.get(feature, {})}
    return EngineSystem(resolve_gguf(spec), settings, "grammar" not in ablate, "selfcheck" not in ablate)


_ROOT = Path(__file__).resolve().parent.parent  # the project's checkout


@functools.cache
def _engine_code(root: Path = _ROOT) -> str:
    """A hash of the project's source files that the engine runs (`run.pipeline.code_files`)."""
    from run.pipeline import code_files

    digest = hashlib.sha256()
    for path in code_files("run.engine", root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
