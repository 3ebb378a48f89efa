"""The generation engine: redact, screen, generate under the grammar, validate, self-check and revise.

    from run.engine import Engine
    engine = Engine()                       # EngineConfig() defaults; see run/config.py
    result = engine.generate("reset my password", {"app": "Shopify", "platform": "ios"})
    result.output      # a schema-valid procedure or refusal, or None with result.error set
    result.numbered    # the numbered-list rendering; result.json is the JSON text

Every output the engine returns is validated with jsonschema against data/schema.json. Anything
else (grammar off and the model wrote prose, a timeout, a budget too small for any answer) comes
back as `output=None` with `status` and `error` saying why, never as a partial object.

Drafts come from our own decoder (run/decoder.py: llguidance masks, jump-forward, repetition
control) unless `--constraint gbnf` picks llama-cpp-python's grammar sampler, the old path kept
as an ablation. The prompt is tokenized by the decoder on every path: only the chat template's
markers become special tokens, never text the user typed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from data.paths import DEFAULT_QUANT, DEFAULT_RUN, gguf_file, run_dir
from data.prompt import build_messages, output_json, render_numbered
from data.redact import redact, redact_value, region_of
from data.schema import is_refusal
from data.settings import UserError
from run import safety, selfcheck
from run.adapters import Adapters
from run.boundary import check_input, clean_input, mask_output, parse_answer
from run.config import EngineConfig, physical_cores
from run.constraint import (
    Bounds,
    Constraint,
    LarkGrammar,
    SchemaGrammar,
    check_compiles,
    fit_bounds,
    tighter,
)
from run.decoder import Decoder, Sampling
from run.queue import FifoLock, QueueFullError, ServiceTimes, Tickets, would_time_out

Status = Literal["ok", "invalid", "timeout", "budget", "busy"]
Stream = Callable[[int, str], None]
# Tokens kept free between prompt and context end. Both paths now decode from the same prompt
# tokens (Decoder.prompt), so this is slack, kept at the 8 that the budgets were measured with.
_PROMPT_MARGIN = 8
# Retries with tighter bounds when a draft is cut off anyway (it cannot be under a sound
# constraint): each halves the string lengths, so two reach a quarter before giving up.
_BUDGET_RETRIES = 2


class ModelError(UserError, RuntimeError):
    """The model file to load is missing."""


def resolve_model(path: str = "", run: str = DEFAULT_RUN) -> Path:
    """The GGUF to load: `path`, else the latest q4_k_m export of outputs/<run>, else the shipped SmolLM2."""
    if path:
        if not Path(path).is_file():
            raise ModelError(f"--model {path}: no such file; pass a .gguf path, or nothing for the default")
        return Path(path)
    folder = run_dir(run)
    try:
        from export import find_gguf

        found = find_gguf(folder, DEFAULT_QUANT)
    except ImportError:  # the export stage is optional for serving
        candidate = gguf_file(folder, DEFAULT_QUANT)
        found = candidate if candidate.is_file() else None
    if found is not None:
        return found
    from data.embedded import smollm2_gguf

    return smollm2_gguf()


@dataclass
class SelfCheckReport:
    """Which rules failed on each draft, and how many drafts it took."""

    enabled: bool
    rounds: int = 0  # drafts that came out as valid answers
    failed: list[list[str]] = field(default_factory=list)  # rule names, one list per draft
    violations: list[dict[str, str]] = field(default_factory=list)  # those of the returned draft
    # Why the revisions stopped before the rules passed: "timeout", "budget" or "invalid" (a
    # revision that failed), or None. The answer is then the best earlier draft, said so here.
    stopped: str | None = None

    @property
    def passed(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "rounds": self.rounds,
            "failed": self.failed,
            "passed": self.passed,
            "violations": self.violations,
            "stopped": self.stopped,
        }


@dataclass
class Result:
    """One answer: a schema-valid output (or None and an error), its renderings and its cost."""

    output: dict[str, Any] | None
    status: Status = "ok"
    error: str | None = None
    refused_by: Literal["rules", "model"] | None = None
    selfcheck: SelfCheckReport = field(default_factory=lambda: SelfCheckReport(enabled=False))
    tokens: int = 0  # generated over all drafts (sampled and forced), end-of-sequence tokens included
    forced: int = 0  # of those, appended by jump-forward without sampling
    kept: int = 0  # of those, in the returned answers (the rest were rolled back)
    rollbacks: dict[str, int] = field(default_factory=dict)  # repetition control, summed over drafts
    mask_s: list[float] = field(default_factory=list)  # time to mask each sampled token
    latency_s: float = 0.0
    decode_s: float = 0.0  # first token to last, summed over drafts
    grammar: bool = True
    bounds: Bounds | None = None
    redactions: dict[str, int] = field(default_factory=dict)
    output_redactions: dict[str, int] = field(default_factory=dict)  # PII masked in the answer
    stripped: int = 0  # invisible formatting characters removed from the input (clean_input)
    intent: str = ""  # as prompted, after redaction
    model: str = ""
    adapter: str | None = None  # the LoRA adapter that answered; None: the model alone
    safety_rule: str | None = None  # the safety rule that refused, "category#index (where)"
    retry_after_s: int | None = None  # with status "busy": when the line should have room again
    ticket: str | None = None  # with status "busy": brought back, it keeps this request's place
    ticket_ignored: str | None = None  # why a ticket the request brought was not honoured
    prompt_tokens: int = 0  # of the first draft's prompt; 0 when the safety rules answered

    @property
    def ok(self) -> bool:
        return self.output is not None

    @property
    def numbered(self) -> str:
        return render_numbered(self.output) if self.output else ""

    @property
    def json(self) -> str:
        return output_json(self.output) if self.output else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "numbered": self.numbered,
            "status": self.status,
            "error": self.error,
            "refused_by": self.refused_by,
            "selfcheck": self.selfcheck.to_dict(),
            "tokens": self.tokens,
            "forced": self.forced,
            "rollbacks": self.rollbacks,
            "latency_s": round(self.latency_s, 3),
            "grammar": self.grammar,
            "redactions": self.redactions,
            "stripped": self.stripped,
            "output_redactions": self.output_redactions,
            "model": self.model,
            "adapter": self.adapter,
            "safety_rule": self.safety_rule,
        }


@dataclass
class _Draft:
    output: dict[str, Any] | None
    status: Status
    error: str | None
    tokens: int
    decode_s: float
    bounds: Bounds | None
    forced: int = 0
    rollbacks: Counter = field(default_factory=Counter)
    mask_s: list[float] = field(default_factory=list)
    kept: int = 0


class _Limits(NamedTuple):
    """What one request may spend: tokens per draft, the deadline, and its sampling temperature."""

    max_tokens: int
    deadline: float
    temperature: float


class Engine:
    """A loaded GGUF plus the constraint; `generate` is safe to call from many threads."""

    def __init__(self, config: EngineConfig | None = None, constraint: Constraint | None = None):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.config = config or EngineConfig()
        self.model_path = resolve_model(self.config.model)
        default = SchemaGrammar() if self.config.constraint == "gbnf" else LarkGrammar()
        self.constraint = constraint or default
        self.llama = Llama(
            model_path=str(self.model_path),
            n_ctx=self.config.n_ctx,
            n_threads=self.config.threads or physical_cores(),
            seed=self.config.seed,
            verbose=False,
        )
        self.decoder = Decoder(self.llama)
        self.adapters = Adapters.load(self.llama, self.config.adapter, self.config.default_adapter)
        # Fail at start-up, not on the first request.
        if isinstance(self.constraint, SchemaGrammar):
            check_compiles(self.constraint.gbnf(Bounds()), self.llama)
        elif isinstance(self.constraint, LarkGrammar):
            self.decoder.matcher(self.constraint.lark(Bounds()))
        # The same formatter llama-cpp-python builds from the GGUF's chat template; Decoder.prompt
        # renders the messages with it and tokenizes the pieces.
        eos, bos = self.llama.token_eos(), self.llama.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=self.llama.metadata["tokenizer.chat_template"],
            eos_token=self.llama._model.token_get_text(eos) if eos != -1 else "",
            bos_token=self.llama._model.token_get_text(bos) if bos != -1 else "",
        )
        # The llama.cpp context is not thread-safe: one request at a time, in arrival order.
        self._lock = FifoLock(self.config.max_queue)
        # Recent seconds with the model, for admission, leaving the line and Retry-After; a
        # quarter of the timeout stands in until the first request has finished.
        self._times = ServiceTimes(prior_s=self.config.timeout_s / 4)
        self._tickets = Tickets()

    def retry_after(self, waiting: int) -> int:
        """Seconds until the requests ahead are likely served (at least 1)."""
        return max(1, round((waiting + 1) * self._times.mean_s))

    def _enter(self, place: int, deadline: float, limit: float, base: dict[str, Any]) -> Result | None:
        """Take the model for the request at this place in line: None once it holds the lock,
        else the "busy" Result, with Retry-After and a ticket that keeps the place."""
        ahead, times = self._lock.ahead_of(place), self._times
        if would_time_out(ahead, times.mean_s, times.need_s, deadline - time.monotonic()):
            why = (
                f"{ahead} requests are ahead, about {ahead * times.mean_s:.0f} s of work, and a first"
                f" draft takes up to {times.need_s:.0f} s: past the timeout"
            )
            retry = self.retry_after(ahead - 1)
        else:
            # A request leaves the line once less time is left than a first draft has needed
            # lately (read again at each turn of the line, as the estimate moves): it could only
            # end in a 504 after holding its place, where a 503 tells its client when to come back.
            try:
                if self._lock.acquire(until=lambda: deadline - times.need_s, place=place):
                    return None
                why = (
                    f"too little of the {limit:.0f} s timeout is left after the line to write an"
                    f" answer (a first draft takes up to {times.need_s:.0f} s)"
                )
                retry = self.retry_after(self._lock.ahead_of(place) - 1)
            except QueueFullError as e:
                why, retry = str(e), self.retry_after(e.waiting)
        ticket = self._tickets.issue(place)
        return Result(None, "busy", f"{why}; retry later", retry_after_s=retry, ticket=ticket, **base)

    def close(self) -> None:
        """Free the model."""
        self.adapters.close()
        self.llama.close()

    def generate(
        self,
        intent: str,
        context: dict[str, Any] | None = None,
        *,
        grammar: bool = True,
        selfcheck: bool = True,
        stream: Stream | None = None,
        timeout_s: float | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        revise: bool = True,
        adapter: str | None = None,
        ticket: str | None = None,
    ) -> Result:
        """Answer one intent. `stream(round, text)` receives tokens as they are decoded.

        grammar=False and selfcheck=False are for ablations; timeout_s, max_tokens and
        temperature override the config for this call. revise=False checks the first draft but
        never rewrites it (a streamed answer: its text has been sent). `adapter` names a loaded
        adapter; None picks one by the context's domain (run/adapters.py). `ticket`: what an
        earlier "busy" Result gave this request, so it goes in line by its first arrival. Raises
        InputError on input the schema rejects, an adapter that is not loaded or a ticket that is
        not in the format; every other failure is a Result with output=None, a status and an error.
        """
        start = time.monotonic()
        deadline = start + (timeout_s or self.config.timeout_s)
        check_input(intent, context)
        chosen = self.adapters.choose(adapter, context)
        # Claimed first, so a ticket not in the format is a 422 whatever else the request holds.
        place, ignored = self._tickets.claim(ticket) if ticket else (None, None)
        intent, context, stripped = clean_input(intent, context)
        counts: Counter = Counter()
        region = region_of(context)
        intent = redact(intent, region, counts)
        context = redact_value(context, region, counts) if context else None
        base = {
            "grammar": grammar,
            "stripped": stripped,
            "redactions": dict(counts),
            "intent": intent,
            "model": self.model_path.name,
            "adapter": chosen,
            "selfcheck": SelfCheckReport(enabled=selfcheck),
            "ticket_ignored": ignored,
        }
        decision = safety.decide(intent, context)
        if decision is not None:
            refusal = safety.refusal(decision.category, safety.detect_language(intent, context))
            rule = f"{decision.rule} ({decision.where})"
            return Result(
                refusal, refused_by="rules", safety_rule=rule, latency_s=time.monotonic() - start, **base
            )
        # A first draft that cannot fit is known before the line: tokenizing reads only the
        # model's vocabulary, not the context the lock guards, so the 422 comes at once.
        messages = build_messages({"input": {"intent": intent, "context": context}}, assistant=None)
        first = self.prompt_tokens(messages)
        problem = self._fit(first, max_tokens or self.config.max_tokens, grammar)[2]
        if problem:
            return Result(None, "budget", problem, latency_s=time.monotonic() - start, **base)
        place = self._lock.arrival() if place is None else place
        refused = self._enter(place, deadline, timeout_s or self.config.timeout_s, base)
        if refused is not None:
            return refused
        held_from, drafts = time.monotonic(), []
        try:
            self.adapters.activate(chosen)
            heat = self.config.temperature if temperature is None else temperature
            limits = _Limits(max_tokens or self.config.max_tokens, deadline, heat)
            drafting = {**base, "prompt_tokens": len(first)}
            checks = (selfcheck, revise)
            result = self._rounds(messages, context, grammar, checks, stream, limits, drafting, drafts)
        finally:
            # Measured before the lock passes on, so the next in line judges by it.
            self._times.add(time.monotonic() - held_from, drafts[0] if drafts else None)
            self._lock.release()
        held = result.output
        result.output, result.output_redactions = mask_output(held, region)
        if held is not None and result.output is None:
            result.status, result.error = (
                "invalid",
                "the answer held PII that does not mask within the schema",
            )
        result.latency_s = time.monotonic() - start
        return result

    def _rounds(self, messages, context, grammar, checks, stream, limits, base, drafts) -> Result:
        """The first draft and its revisions; each draft's seconds are appended to `drafts`."""
        check, revise = checks
        intent = base["intent"]
        report: SelfCheckReport = base["selfcheck"]
        best: Result | None = None  # the valid draft with the fewest violations so far
        fewest = None
        spent = _Draft(None, "ok", None, 0, 0.0, None)  # the cost of every draft, summed
        for round_no in range(1, 2 + (self.config.selfcheck_rounds if check and revise else 0)):
            # A revision starts only if one as long as the last draft still fits: one cut off at
            # the deadline is lost work that holds up the line.
            if best is not None and time.monotonic() + drafts[-1] > limits.deadline:
                report.stopped = "timeout"
                break
            drafted_from = time.monotonic()
            draft = self._draft(messages, grammar, stream, round_no, limits)
            drafts.append(time.monotonic() - drafted_from)
            _add(spent, draft)
            if draft.output is None:  # keep an earlier valid draft if there is one, and say so
                if best is not None:
                    report.stopped = draft.status
                best = best or Result(None, draft.status, draft.error, bounds=draft.bounds, **base)
                break
            violations = [] if not check else self._violations(draft.output, intent, context)
            report.rounds = round_no
            report.failed.append(sorted({v.rule for v in violations}))
            if fewest is None or len(violations) < fewest:
                fewest, report.violations = len(violations), [v.__dict__ for v in violations]
                refused = "model" if is_refusal(draft.output) else None
                best = Result(draft.output, refused_by=refused, bounds=draft.bounds, **base)
            if not violations:
                break
            messages = messages[:2] + [
                {"role": "assistant", "content": output_json(draft.output)},
                {"role": "user", "content": selfcheck.revision_message(violations)},
            ]
        _take_cost(best, spent)
        return best

    def _violations(self, output, intent, context) -> list[selfcheck.Violation]:
        return selfcheck.check(output, intent, context, max_steps=self.config.max_steps)

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat-formatted prompt's tokens; message contents are text, never special tokens."""
        return self.decoder.prompt(self._formatter, messages)

    def _fit(
        self, prompt: list[int], max_tokens: int, grammar: bool
    ) -> tuple[int, Bounds | None, str | None]:
        """The token budget after the prompt, the grammar's bounds within it, and why no answer
        fits (None when one does)."""
        budget = min(max_tokens, self.config.n_ctx - len(prompt) - _PROMPT_MARGIN)
        if not grammar:
            return budget, None, None if budget >= 1 else "the prompt fills the context window; shorten it"
        bounds = fit_bounds(self.constraint, budget)
        if bounds is None:
            need = self.constraint.worst_case_tokens(Bounds.scaled(0.0))
            return (
                budget,
                None,
                f"{budget} tokens are left after the prompt; the shortest answer needs {need}: shorten it",
            )
        return budget, bounds, None

    def _draft(self, messages, grammar: bool, stream, round_no: int, limits: _Limits) -> _Draft:
        max_tokens, deadline, _ = limits
        prompt = self.prompt_tokens(messages)
        budget, bounds, problem = self._fit(prompt, max_tokens, grammar)
        if problem:
            return _Draft(None, "budget", problem, 0, 0.0, None)
        if not grammar:
            return self._decode(prompt, budget, None, stream, (round_no, limits))
        spent = _Draft(None, "ok", None, 0, 0.0, None)
        for _ in range(_BUDGET_RETRIES + 1):
            draft = self._decode(prompt, budget, bounds, stream, (round_no, limits))
            _add(spent, draft)
            if draft.status != "budget" or time.monotonic() > deadline:
                break
            bounds = tighter(bounds)
        _take_cost(draft, spent)
        return draft

    def _decode(self, prompt: list[int], budget: int, bounds: Bounds | None, stream, when) -> _Draft:
        """One draft through our decoder, or through llama-cpp-python's grammar sampler for gbnf."""
        round_no, (_, deadline, temperature) = when
        if bounds is not None and hasattr(self.constraint, "sampling_kwargs"):
            return self._decode_gbnf(prompt, bounds, stream, round_no, (deadline, temperature))
        grammar = self.constraint if bounds is not None else None
        max_tokens = self.constraint.worst_case_tokens(bounds) if bounds is not None else budget
        sampling = Sampling(
            temperature=temperature,
            seed=self.config.seed,
            repetition=self.config.repetition,
            retries=self.config.repetition_retries,
        )
        on_text = (lambda text: stream(round_no, text)) if stream is not None else None
        out = self.decoder.decode(
            prompt,
            sampling,
            grammar=grammar,
            bounds=bounds,
            max_tokens=max_tokens,
            deadline=deadline,
            on_text=on_text,
        )
        spent = (
            out.sampled + out.forced,
            out.decode_s,
            bounds,
            out.forced,
            out.rollbacks,
            out.mask_s,
            out.kept,
        )
        if out.status != "ok":
            status = "invalid" if out.status == "budget" and bounds is None else out.status
            return _Draft(None, status, out.error, *spent)
        output, error = parse_answer(out.text, strict=bounds is not None)
        return _Draft(output, "ok" if output else "invalid", error, *spent)

    def _decode_gbnf(self, prompt: list[int], bounds: Bounds, stream, round_no: int, when) -> _Draft:
        """One streamed completion with llama-cpp-python's GBNF sampler; validates what it got.

        It gets our prompt tokens, not the messages, so user text stays text on this path too.
        """
        deadline, temperature = when
        counted = [0]

        def count(_ids, scores):  # called once per sampled token
            counted[0] += 1
            return scores

        kwargs = self.constraint.sampling_kwargs(bounds)
        max_tokens = self.constraint.worst_case_tokens(bounds)
        chunks = self.llama.create_completion(
            prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            repeat_penalty=self.config.repeat_penalty,
            seed=self.config.seed,
            stream=True,
            logits_processor=[count],
            **kwargs,
        )
        text, finish, first = [], None, None
        for chunk in chunks:
            choice = chunk["choices"][0]
            delta = choice["text"]
            if delta:
                first = first or time.monotonic()
                text.append(delta)
                if stream is not None:
                    stream(round_no, delta)
            finish = choice.get("finish_reason") or finish
            if time.monotonic() > deadline:
                chunks.close()
                return _Draft(None, "timeout", "ran past the per-request timeout", counted[0], 0.0, bounds)
        decode_s = time.monotonic() - first if first else 0.0
        # Nothing is rolled back on this path: every token decoded is kept.
        spent = {"tokens": counted[0], "decode_s": decode_s, "bounds": bounds, "kept": counted[0]}
        if finish == "length":
            msg = f"cut off at {max_tokens} tokens before the answer closed"
            return _Draft(None, "budget", msg, **spent)
        output, error = parse_answer("".join(text), strict=True)
        return _Draft(output, "ok" if output else "invalid", error, **spent)


# What a draft costs; `_add` sums them over drafts, `_take_cost` hands the sum on.
_COSTS = ("tokens", "decode_s", "forced", "kept", "rollbacks", "mask_s")


def _take_cost(target: Result | _Draft, spent: _Draft) -> None:
    """Give `target` (the draft or result returned) the summed cost of every draft behind it."""
    for name in _COSTS:
        setattr(target, name, getattr(spent, name))


def _add(total: _Draft, draft: _Draft) -> None:
    """Add one draft's cost to a running total (numbers add, Counters merge, lists extend)."""
    for name in _COSTS:
        setattr(total, name, getattr(total, name) + getattr(draft, name))
