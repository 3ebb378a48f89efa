"""Our own constrained decoding loop on llama-cpp-python's low-level API, with llguidance's masks.

    decoder = Decoder(llama)
    tokens = decoder.prompt(formatter, messages)         # user text stays text
    out = decoder.decode(tokens, Sampling(), grammar=LarkGrammar(), bounds=Bounds(),
                         max_tokens=4096, deadline=time.monotonic() + 60)
    out.text, out.status, out.sampled, out.forced, out.rollbacks

One call of `decode` is one answer. The loop reads top to bottom as named steps, so a profile
matches it: `_prefill` (the prompt, reusing the KV cache's common prefix with the last request),
then per token `_jump_forward` (tokens the grammar forces, appended without sampling and
evaluated in one batch with the token before them), `_mask` (llguidance's bitmask into a reused
buffer, applied in place to llama.cpp's own logits row), `_sample` (argmax at temperature 0,
llama.cpp's sampler chain otherwise), `_append`, and `_watch`, the repetition control: an item
that copies an earlier one, or words that loop, are rolled back (`_rollback`: llguidance rollback
plus KV-cache truncation) and resampled with their first diverging token banned.
"""

from __future__ import annotations

import codecs
import os
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from run import repetition
from run.constraint import Bounds, LarkGrammar

Status = Literal["ok", "timeout", "budget", "invalid"]
# Chat-template placeholders for message contents: NUL never occurs in a template or a prompt.
_SENTINEL = "\x00stepsmith-content-{}\x00"


class DecoderError(RuntimeError):
    """The grammar or the model broke an invariant of the loop (a bug, not a user error)."""


@dataclass(frozen=True)
class Sampling:
    """How tokens are chosen, and the repetition control's knobs."""

    temperature: float = 0.0
    seed: int = 13
    # llama-cpp-python's create_chat_completion defaults, so sampled answers match the old path's.
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repetition: bool = True
    retries: int = 3  # resamples of one item (or one loop) before it gives up on it


@dataclass
class Decoded:
    """One decoded answer: its text, why it stopped, and what it cost."""

    text: str = ""
    status: Status = "ok"
    error: str | None = None
    sampled: int = 0  # tokens the model chose (end-of-sequence included), rolled-back ones too
    forced: int = 0  # tokens the grammar forced, appended without sampling
    kept: int = 0  # tokens of the answer as returned, after every rollback
    reused_tokens: int = 0  # of the prompt, found in the KV cache
    prompt_s: float = 0.0
    decode_s: float = 0.0
    mask_s: list[float] = field(default_factory=list)  # per masked token
    rollbacks: Counter = field(default_factory=Counter)  # item / restart / loop / closed / cut / kept
    # Each jump-forward in the answer: (the bytes the grammar forced, the bytes its tokens
    # appended). With token healing the tokens may stop short; the model writes the rest.
    jumps: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class _State:
    """The answer so far: its tokens, where each starts in `text`, and the bans per position."""

    matcher: Any
    prompt: list[int]
    tokens: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    layout: repetition.Layout = field(default_factory=repetition.Layout)
    bans: dict[int, set[int]] = field(default_factory=dict)
    tries: Counter = field(default_factory=Counter)
    min_items: dict[str, int] = field(default_factory=dict)  # per array key, from the schema
    jumps: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # (token index, forced, appended)
    checked: int = 0  # items whose copy check has run
    evaluated: int = 0  # tokens of prompt + answer in the KV cache, with logits for the last


class Decoder:
    """Owns the llguidance tokenizer, the compiled grammars and the reused buffers of one model."""

    def __init__(self, llama: Any):
        import numpy as np
        from llguidance.llamacpp import lltokenizer_from_vocab
        from llguidance.numpy import allocate_token_bitmask

        self.llama = llama
        with warnings.catch_warnings():  # llguidance reads each token's attributes by an old name
            warnings.simplefilter("ignore", DeprecationWarning)
            self.tokenizer = lltokenizer_from_vocab(llama._model.vocab)
        self.n_vocab = llama.n_vocab()
        self.eos = llama.token_eos()
        self.pieces = [self.tokenizer.decode_bytes([t]) for t in range(self.n_vocab)]
        self._bitmask = allocate_token_bitmask(1, self.tokenizer.vocab_size)
        self._blocked = np.empty(self.n_vocab, dtype=bool)
        self._matchers: dict[str, Any] = {}

    # -- the prompt -------------------------------------------------------------------------
    def prompt(self, formatter: Any, messages: list[dict[str, str]]) -> list[int]:
        """The chat-formatted prompt's tokens: the template's markers as special tokens, every
        message content (the user's intent and context included) as plain text."""
        marked = [{**m, "content": _SENTINEL.format(i)} for i, m in enumerate(messages)]
        formatted = formatter(messages=marked)
        rest, tokens, add_bos = formatted.prompt, [], not formatted.added_special
        for i, message in enumerate(messages):
            head, found, rest = rest.partition(_SENTINEL.format(i))
            if not found or _SENTINEL.format(i) in rest:
                raise DecoderError(f"the chat template does not place message {i}'s content exactly once")
            tokens += self.llama.tokenize(head.encode(), add_bos=add_bos and not tokens, special=True)
            tokens += self.llama.tokenize(message["content"].encode(), add_bos=False, special=False)
        return tokens + self.llama.tokenize(rest.encode(), add_bos=False, special=True)

    def matcher(self, lark: str) -> Any:
        """A fresh matcher for a Lark grammar (each grammar compiles once, then is copied)."""
        import llguidance

        if lark not in self._matchers:
            grammar = llguidance.LLMatcher.grammar_from_lark(lark)
            matcher = llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)
            if matcher.is_error():
                raise DecoderError(f"llguidance rejected the grammar: {matcher.get_error()}")
            self._matchers[lark] = matcher
        return self._matchers[lark].deep_copy()

    # -- the loop ---------------------------------------------------------------------------
    def decode(
        self,
        prompt: list[int],
        sampling: Sampling,
        *,
        grammar: LarkGrammar | None,
        bounds: Bounds | None,
        max_tokens: int,
        deadline: float,
        on_text: Any = None,
    ) -> Decoded:
        """Decode one answer; `grammar=None` decodes without one (the ablation)."""
        out = Decoded()
        matcher = self.matcher(grammar.lark(bounds or Bounds())) if grammar is not None else None
        state = _State(matcher, prompt, min_items=grammar.min_items if grammar is not None else {})
        start = time.monotonic()
        if not self._prefill(state, out, deadline):
            return _stop(out, "timeout", "ran past the per-request timeout while reading the prompt")
        out.prompt_s = time.monotonic() - start
        stream = _Stream(on_text)
        chain = _sampler_chain(sampling) if sampling.temperature > 0 else None
        try:
            out = self._loop(state, out, sampling, chain, max_tokens, deadline, stream)
        finally:
            if chain is not None:
                import llama_cpp

                llama_cpp.llama_sampler_free(chain)
        out.decode_s = time.monotonic() - start - out.prompt_s
        out.text = state.text.decode("utf-8", "replace")
        out.kept = len(state.tokens)
        out.jumps = [(forced, appended) for _, forced, appended in state.jumps]
        if out.status == "ok":
            stream.flush(state.text)
        return out

    def _loop(self, state, out, sampling, chain, max_tokens, deadline, stream) -> Decoded:
        repeat = sampling.repetition and state.matcher is not None
        while True:
            if time.monotonic() > deadline:
                return _stop(out, "timeout", "ran past the per-request timeout")
            if self._jump_forward(state, out):
                if repeat:
                    self._watch(state, out, sampling)
                continue
            if state.matcher is not None and state.matcher.is_stopped():
                return out
            if len(state.tokens) >= max_tokens:
                return _stop(out, "budget", f"cut off at {max_tokens} tokens before the answer closed")
            self._flush(state)
            token = self._sample(state, out, chain)
            out.sampled += 1
            if token == self.eos or (state.matcher is None and self._is_end(token)):
                if state.matcher is not None and not state.matcher.consume_token(token):
                    raise DecoderError(f"the grammar refused end-of-sequence: {state.matcher.get_error()}")
                return out
            self._append(state, [token])
            if repeat:
                self._watch(state, out, sampling)
            stream.send(state.text, state.layout.settled if repeat else len(state.text))

    def _is_end(self, token: int) -> bool:
        """An end-of-generation token (EOS, EOT, ...) of the model's vocabulary."""
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llama._model.vocab, token))

    def _prefill(self, state: _State, out: Decoded, deadline: float) -> bool:
        """Evaluate the prompt, after the prefix it shares with what the KV cache holds."""
        llama, prompt = self.llama, state.prompt
        reuse = _common_prefix(llama.input_ids[: llama.n_tokens].tolist(), prompt)
        reuse = min(reuse, len(prompt) - 1)  # the last prompt token is evaluated for its logits
        llama.n_tokens, out.reused_tokens = reuse, reuse
        for i in range(reuse, len(prompt), llama.n_batch):
            if time.monotonic() > deadline:
                return False
            llama.eval(prompt[i : i + llama.n_batch])
        state.evaluated = len(prompt)
        return True

    def _jump_forward(self, state: _State, out: Decoded) -> bool:
        """Append the tokens the grammar forces (llguidance applies its token-healing rule)."""
        if state.matcher is None:
            return False
        forced = state.matcher.compute_ff_tokens()
        if not forced:
            return False
        grammar_bytes = state.matcher.compute_ff_bytes()
        state.jumps.append((len(state.tokens), grammar_bytes, b"".join(self.pieces[t] for t in forced)))
        self._append(state, forced)
        out.forced += len(forced)
        return True

    def _flush(self, state: _State) -> None:
        """Evaluate the appended tokens not yet in the KV cache, in one batch."""
        n_prompt = len(state.prompt)
        total = n_prompt + len(state.tokens)
        if state.evaluated < total:
            # Only the pending tail: after a rollback to the answer's start it begins in the prompt.
            pending = state.prompt[state.evaluated :] + state.tokens[max(0, state.evaluated - n_prompt) :]
            self.llama.n_tokens = state.evaluated
            self.llama.eval(pending)
            state.evaluated = total

    def _logits(self) -> Any:
        """llama.cpp's logits row for the last evaluated token, as a view (no copy)."""
        import ctypes

        import llama_cpp
        import numpy as np

        pointer = llama_cpp.llama_get_logits_ith(self.llama._ctx.ctx, -1)
        return np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), (self.n_vocab,))

    def _mask(self, state: _State, logits: Any, out: Decoded) -> None:
        """Set the logits of every token the grammar forbids to -inf, in place."""
        import numpy as np
        from llguidance.numpy import fill_next_token_bitmask

        begin = time.perf_counter()
        fill_next_token_bitmask(state.matcher, self._bitmask)
        bits = np.unpackbits(self._bitmask.view(np.uint8), count=self.n_vocab, bitorder="little")
        np.equal(bits, 0, out=self._blocked)
        np.copyto(logits, -np.inf, where=self._blocked)
        out.mask_s.append(time.perf_counter() - begin)

    def _sample(self, state: _State, out: Decoded, chain: Any) -> int:
        """The next token: masked by the grammar, minus the tokens banned at this position."""
        import numpy as np

        logits = self._logits()
        if state.matcher is not None:
            self._mask(state, logits, out)
        banned = state.bans.get(len(state.tokens), ())
        saved = {t: float(logits[t]) for t in banned}
        for t in banned:
            logits[t] = -np.inf
        if banned and not np.isfinite(logits.max()):
            for t, value in saved.items():  # every admissible token is banned: lift the bans
                logits[t] = value
            out.rollbacks["unbannable"] += 1
        if chain is None:
            return int(np.argmax(logits))
        import llama_cpp

        return llama_cpp.llama_sampler_sample(chain, self.llama._ctx.ctx, -1)

    def _append(self, state: _State, tokens: list[int]) -> None:
        """Consume `tokens` in the grammar and add them to the answer (evaluated lazily)."""
        if state.matcher is not None and not state.matcher.consume_tokens(tokens):
            raise DecoderError(f"the grammar refused a token it allowed: {state.matcher.get_error()}")
        for token in tokens:
            state.tokens.append(token)
            state.starts.append(len(state.text))
            state.text += self.pieces[token]
            state.layout.feed(self.pieces[token])

    def _rollback(self, state: _State, keep: int) -> None:
        """Drop every answer token from index `keep` on: grammar, text, layout and KV cache."""
        drop = len(state.tokens) - keep
        if drop <= 0:
            return
        if not state.matcher.rollback(drop):
            raise DecoderError(f"llguidance could not roll back {drop} tokens: {state.matcher.get_error()}")
        del state.text[state.starts[keep] :]
        del state.tokens[keep:], state.starts[keep:]
        state.layout = repetition.Layout()
        state.layout.feed(bytes(state.text))
        state.checked = min(state.checked, sum(i.end is not None for i in state.layout.items))
        for position in [p for p in state.bans if p > keep]:
            del state.bans[position]
        state.jumps = [j for j in state.jumps if j[0] < keep]
        # The logits needed next are those of the token before `keep`: evaluate it again.
        state.evaluated = min(state.evaluated, len(state.prompt) + keep - 1)

    def _force(self, state: _State, cut: int, suffix: bytes) -> bool:
        """Make the answer end with `suffix` after its first `cut` bytes, if the grammar admits it."""
        keep = _token_at(state, cut)
        tokens = self.tokenizer.tokenize_bytes(bytes(state.text[state.starts[keep] : cut]) + suffix)
        trial = state.matcher.deep_copy()
        trial.rollback(len(state.tokens) - keep)
        if trial.validate_tokens(tokens) != len(tokens):
            return False
        self._rollback(state, keep)
        self._append(state, tokens)
        return True

    # -- repetition control -----------------------------------------------------------------
    def _watch(self, state: _State, out: Decoded, sampling: Sampling) -> None:
        """Roll back an item that copies an earlier one, or a word loop in the open item."""
        items = state.layout.items
        closed = [i for i in items if i.end is not None]
        while state.checked < len(closed):
            item = closed[state.checked]
            if self._copy(state, out, sampling, item, closed[: state.checked]):
                return
            state.checked += 1
        item = state.layout.open_item
        if item is not None:
            self._loop_in(state, out, sampling, item)

    def _copy(self, state, out, sampling, item: repetition.Item, earlier: list) -> bool:
        """Handle `item` if it copies an earlier item; True when the answer was rolled back.

        The resample starts where the item leaves every earlier item it does not copy: an item
        may open like a distinct one ('Tap "'), and the token after that shared start is banned.
        Past `retries`, the array closes where its minItems allows; where it does not, the item
        restarts from its first token, up to `retries` times more.
        """
        text = _content(state.text, item)
        copies = repetition.copies(text, [_content(state.text, e) for e in earlier])
        if not any(copies):
            return False
        state.tries[("item", item.start)] += 1
        if state.tries[("item", item.start)] <= sampling.retries:
            raw = bytes(state.text[item.start : item.end])
            distinct = [e for e, copy in zip(earlier, copies, strict=True) if not copy]
            shared = max(
                (_common_prefix(raw, bytes(state.text[e.start : e.end])) for e in distinct), default=0
            )
            self._resample(state, item.start + min(shared, len(raw) - 1))
            out.rollbacks["item"] += 1
            return True
        if item.index >= state.min_items.get(item.key, 1) and self._force(state, item.cut, b"]"):
            out.rollbacks["closed"] += 1
            return True
        if state.tries[("item", item.start)] <= 2 * sampling.retries:
            # The array may not close (its minItems): start the item afresh instead, one more
            # opening token banned each time, so the copy cannot come back by the same way in.
            self._resample(state, item.start)
            out.rollbacks["restart"] += 1
            return True
        out.rollbacks["kept"] += 1
        return False

    def _loop_in(self, state, out, sampling, item: repetition.Item) -> None:
        text = bytes(state.text[item.start :]).decode("utf-8", "ignore")
        begin = repetition.looping(text)
        if begin is None:
            return
        at = item.start + len(text[:begin].encode())
        state.tries[("loop", item.start)] += 1
        if state.tries[("loop", item.start)] <= sampling.retries:
            self._resample(state, at)
            out.rollbacks["loop"] += 1
            return
        kept = len(bytes(state.text[:at]).rstrip(b" "))
        if self._force(state, kept, b'"'):  # end the item before the loop
            out.rollbacks["cut"] += 1

    def _resample(self, state: _State, byte: int) -> None:
        """Roll back to the token holding `byte` and ban it there."""
        position = _token_at(state, byte)
        token = state.tokens[position]
        self._rollback(state, position)
        state.bans.setdefault(position, set()).add(token)


def _token_at(state: _State, byte: int) -> int:
    """The index of the first token that reaches past `byte` (the token holding it)."""
    import bisect

    return max(0, bisect.bisect_right(state.starts, byte) - 1)


def _content(text: bytearray, item: repetition.Item) -> str:
    import json

    return json.loads(b'"' + bytes(text[item.start : item.end]) + b'"')


def _common_prefix(a: Sequence, b: Sequence) -> int:
    """How many leading elements two sequences share."""
    return len(os.path.commonprefix([a, b]))


def _stop(out: Decoded, status: Status, error: str) -> Decoded:
    out.status, out.error = status, error
    return out


def _sampler_chain(sampling: Sampling) -> Any:
    """llama.cpp's own sampler chain: top-k, top-p, min-p, temperature, then a seeded draw."""
    import llama_cpp

    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    for sampler in (
        llama_cpp.llama_sampler_init_top_k(sampling.top_k),
        llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1),
        llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1),
        llama_cpp.llama_sampler_init_temp(sampling.temperature),
        llama_cpp.llama_sampler_init_dist(sampling.seed),
    ):
        llama_cpp.llama_sampler_chain_add(chain, sampler)
    return chain


class _Stream:
    """Sends the committed text to `on_text` as it grows, never splitting a UTF-8 character."""

    def __init__(self, on_text: Any):
        self.on_text = on_text
        self.sent = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def send(self, text: bytearray, upto: int) -> None:
        if self.on_text is None or upto <= self.sent:
            return
        chunk = self.decoder.decode(bytes(text[self.sent : upto]))
        self.sent = upto
        if chunk:
            self.on_text(chunk)

    def flush(self, text: bytearray) -> None:
        if self.on_text is None:
            return
        chunk = self.decoder.decode(bytes(text[self.sent :]), final=True)
        self.sent = len(text)
        if chunk:
            self.on_text(chunk)
