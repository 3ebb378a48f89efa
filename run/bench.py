"""Serving benchmark: decoding speed per path, end-to-end latency, and API throughput under load.

python -m run.bench [--model PATH] [--rounds 2] [--clients 8] [--requests 10] [--key value ...]

The decode measurement runs the same prompts through every path, interleaved per prompt and in
a rotating order so that no path gets the warm or the cold end of a run: our decoder without a
grammar (unconstrained), llama-cpp-python's GBNF grammar sampler (`--constraint gbnf`), and our
decoder with llguidance (the default: masks, jump-forward, repetition control). Tokens per second
count sampled plus forced tokens over the decode time after the prompt; every ratio comes from
one run.

`bench(engine, ...)` returns a dict; `markdown(results)` renders it as a section of
docs/benchmarks.md. Results and the resolved config go to outputs/bench/run/.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from data.paths import OUTPUTS
from data.settings import dump_config, option, parse_config, user_errors
from run.config import EngineConfig, engine_config

# The same prompts for every measurement: short and long, four languages, one with no context.
PROMPTS = [
    ("reset my password in the Shopify app", {"app": "Shopify", "platform": "ios", "locale": "en-US"}),
    ("turn on two-factor authentication for my GitHub account", {"app": "GitHub", "platform": "web"}),
    ("¿Cómo cambio el idioma de WhatsApp?", {"app": "WhatsApp", "platform": "android", "locale": "es-ES"}),
    ("Comment exporter mes contacts Gmail en CSV ?", {"app": "Gmail", "platform": "web", "locale": "fr-FR"}),
    ("cancel my Netflix subscription", None),
    ("Wie ändere ich mein Hintergrundbild?", {"platform": "windows", "locale": "de-DE"}),
]


@dataclass
class BenchConfig(EngineConfig):
    """Settings of `python -m run.bench`: the engine's, plus the size of each measurement."""

    # 7168: serving's own budget, so the grammar paths write answers of serving's length (at 512
    # the bounds cut every string to a tenth of its schema length).
    decode_max_tokens: int = option(7168, "token budget per draft on the grammar paths and for the latency")
    # An unconstrained answer has no bound and may never close: it stops here, and its tokens/s
    # counts what was decoded. 512 is twice the fine-tuned default's mean answer (262 tokens).
    plain_max_tokens: int = option(512, "token cap per unconstrained answer in the decode measurement")
    # 2 rounds of 6 prompts: 12 answers a path, in minutes on 2 cores for the fine-tuned default.
    rounds: int = option(2, "rounds over the prompts in the decode measurement")
    clients: int = option(8, "concurrent API clients in the load test")
    # 10 per client: 80 requests finish in minutes on 2 cores (the example is 25).
    requests: int = option(10, "requests each client sends in the load test")
    # 160 tokens: the grammar then admits a short procedure, so 200 requests finish in minutes on 2 cores.
    load_max_tokens: int = option(160, "token budget per draft in the load test")
    load_seconds: float = option(600.0, "stop sending load-test requests after this many seconds")
    out_dir: str = option(str(OUTPUTS / "bench" / "run"), "where bench.json, bench.md and config.yaml go")


def _pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else 0.0


PATHS = ("plain", "gbnf", "llguidance")


def decode_speed(
    engine: Any, max_tokens: int, rounds: int = 2, plain_max_tokens: int = 512
) -> dict[str, Any]:
    """Tokens per second on each path over the same prompts, interleaved (see the docstring).

    Self-check off; the grammar is swapped per path (built once each), the model is shared, and
    the engine's own constraint is put back afterwards.
    """
    from run.constraint import LarkGrammar, SchemaGrammar

    grammars = {"plain": None, "gbnf": SchemaGrammar(), "llguidance": LarkGrammar()}
    totals = {
        p: {"tokens": 0, "forced": 0, "kept": 0, "seconds": 0.0, "answers": 0, "valid": 0} for p in PATHS
    }
    masks: list[float] = []
    rollbacks: Counter = Counter()
    own = engine.constraint
    try:
        for r in range(rounds):
            for i, (intent, context) in enumerate(PROMPTS):
                shift = (r * len(PROMPTS) + i) % len(PATHS)
                for path in PATHS[shift:] + PATHS[:shift]:
                    engine.constraint = grammars[path] or own
                    cap = plain_max_tokens if path == "plain" else max_tokens
                    result = engine.generate(
                        intent, context, grammar=path != "plain", selfcheck=False, max_tokens=cap
                    )
                    total = totals[path]
                    for key in ("tokens", "forced", "kept"):
                        total[key] += getattr(result, key)
                    total["seconds"] += result.decode_s
                    total["answers"] += 1
                    total["valid"] += result.ok
                    if path == "llguidance":
                        masks += result.mask_s
                        rollbacks.update(result.rollbacks)
    finally:
        engine.constraint = own
    out: dict[str, Any] = {}
    for path, total in totals.items():
        out[path] = {
            **total,
            "seconds": round(total["seconds"], 2),
            "tok_s": round(total["tokens"] / total["seconds"], 1),
        }
    ours = out["llguidance"]
    out["vs_plain"] = round(ours["tok_s"] / out["plain"]["tok_s"], 3)
    out["vs_gbnf"] = round(ours["tok_s"] / out["gbnf"]["tok_s"], 3)
    out["gbnf_vs_plain"] = round(out["gbnf"]["tok_s"] / out["plain"]["tok_s"], 3)
    out["kept_tok_s"] = round(ours["kept"] / ours["seconds"], 1)
    out["forced_share"] = round(ours["forced"] / ours["tokens"], 3) if ours["tokens"] else 0.0
    out["mask_us"] = {
        "p50": round(_pct(masks, 50) * 1e6),
        "p99": round(_pct(masks, 99) * 1e6),
        "n": len(masks),
    }
    out["rollbacks"] = dict(rollbacks)
    out.update(rounds=rounds, prompts=len(PROMPTS), max_tokens=max_tokens, plain_max_tokens=plain_max_tokens)
    return out


def thread_speed(engine: Any, max_tokens: int, rounds: int = 2) -> dict[str, Any]:
    """Our decoder at one llama.cpp thread against the engine's own count, on the same prompts.

    The two alternate prompt by prompt on one model (`llama_set_n_threads` between answers), so
    the ratio is measured within one run; self-check off. The engine's count is put back.
    """
    import llama_cpp

    own = engine.llama.n_threads
    counts = sorted({1, own})
    totals = {n: {"tokens": 0, "seconds": 0.0} for n in counts}
    try:
        for r in range(rounds):
            for i, (intent, context) in enumerate(PROMPTS):
                for n in counts if (r + i) % 2 == 0 else counts[::-1]:
                    llama_cpp.llama_set_n_threads(engine.llama.ctx, n, engine.llama.n_threads_batch)
                    result = engine.generate(intent, context, selfcheck=False, max_tokens=max_tokens)
                    totals[n]["tokens"] += result.tokens
                    totals[n]["seconds"] += result.decode_s
    finally:
        llama_cpp.llama_set_n_threads(engine.llama.ctx, own, engine.llama.n_threads_batch)
    speed = {n: round(t["tokens"] / t["seconds"], 1) for n, t in totals.items()}
    return {"threads": own, "tok_s": speed, "ratio": round(speed[own] / speed[1], 3)}


def latency(engine: Any, max_tokens: int) -> dict[str, Any]:
    """End-to-end latency of `generate` with grammar and self-check on, over the prompts."""
    times, valid = [], 0
    for intent, context in PROMPTS:
        result = engine.generate(intent, context, max_tokens=max_tokens)
        times.append(result.latency_s)
        valid += result.ok
    p50, p95 = round(_pct(times, 50), 2), round(_pct(times, 95), 2)
    return {"n": len(times), "valid": valid, "p50_s": p50, "p95_s": p95}


def _client(port: int, count: int, stop_at: float, log: list, lock: threading.Lock, bar: Any) -> None:
    for i in range(count):
        if time.monotonic() > stop_at:
            return
        intent, context = PROMPTS[i % len(PROMPTS)]
        body = json.dumps({"intent": intent, **({"context": context} if context else {})})
        start = time.monotonic()
        try:
            conn = HTTPConnection("127.0.0.1", port, timeout=600)
            conn.request("POST", "/v1/procedures", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            ok = response.status == 200 and "output" in json.loads(response.read())
            conn.close()
        except (OSError, ValueError):
            ok = False
        with lock:
            log.append((ok, time.monotonic() - start))
            bar.update(1)


def load(engine: Any, clients: int, requests: int, max_tokens: int, seconds: float) -> dict[str, Any]:
    """Throughput of the real app on 127.0.0.1 under concurrent clients, with failed requests counted."""
    from tqdm import tqdm

    from run.api import create_app
    from run.serve import in_background

    log: list[tuple[bool, float]] = []
    lock = threading.Lock()
    with in_background(create_app(engine, ui=False, max_tokens=max_tokens)) as port:
        start = time.monotonic()
        with tqdm(total=clients * requests, desc="bench: API load", unit="req", file=sys.stderr) as bar:
            args = (port, requests, start + seconds, log, lock, bar)
            workers = [threading.Thread(target=_client, args=args) for _ in range(clients)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        wall = time.monotonic() - start
    times = [t for _, t in log]
    return {
        "clients": clients,
        "planned": clients * requests,
        "sent": len(log),
        "failed": sum(not ok for ok, _ in log),
        "wall_s": round(wall, 1),
        "req_s": round(len(log) / wall, 2),
        "p50_s": round(_pct(times, 50), 2),
        "p95_s": round(_pct(times, 95), 2),
        "max_tokens": max_tokens,
    }


def bench(
    engine: Any,
    *,
    decode_max_tokens: int = 7168,
    plain_max_tokens: int = 512,
    rounds: int = 2,
    clients: int = 8,
    requests: int = 10,
    load_max_tokens: int = 160,
    load_seconds: float = 600.0,
) -> dict[str, Any]:
    """Every serving measurement on one engine, with the machine and library versions."""
    import llama_cpp

    from train.bench import machine

    print("bench: decode speed, latency, then the API load test (minutes)", file=sys.stderr, flush=True)
    return {
        "date": date.today().isoformat(),
        "machine": f"{machine()}, llama.cpp on {engine.llama.n_threads} thread(s)",
        "model": engine.model_path.name,
        "versions": {"llama_cpp_python": llama_cpp.__version__, "python": platform.python_version()},
        "decode": decode_speed(engine, decode_max_tokens, rounds, plain_max_tokens),
        "threads": thread_speed(engine, decode_max_tokens, rounds),
        "latency": latency(engine, decode_max_tokens),
        "load": load(engine, clients, requests, load_max_tokens, load_seconds),
    }


def markdown(results: dict[str, Any]) -> str:
    """The docs/benchmarks.md section for `results`."""
    d, lat, ld, th = results["decode"], results["latency"], results["load"], results["threads"]
    rolled = d["rollbacks"].items()
    return "\n".join(
        [
            "## Serving (`run/`)",
            "",
            f"{results['date']}, {results['machine']}, model `{results['model']}`, "
            f"llama-cpp-python {results['versions']['llama_cpp_python']}; `python -m run.bench`. "
            f"Decode: {d['rounds']} rounds over the same {d['prompts']} prompts per path, interleaved; "
            f"grammar paths at a {d['max_tokens']}-token budget, unconstrained answers capped at "
            f"{d['plain_max_tokens']} tokens; tokens/s = (sampled + forced) / decode time.",
            "",
            "| measurement | value |",
            "|---|---|",
            *(
                f"| decode, {label} | {d[p]['tok_s']} tok/s ({d[p]['tokens']} tokens, "
                f"{d[p]['tokens'] // max(1, d[p]['answers'])} an answer, "
                f"{d[p]['valid']} of {d[p]['answers']} answers valid) |"
                for p, label in (
                    ("plain", "unconstrained (our loop, no grammar)"),
                    ("gbnf", "GBNF (llama-cpp-python's grammar sampler)"),
                    ("llguidance", "our decoder (llguidance, jump-forward, repetition control)"),
                )
            ),
            f"| our decoder / unconstrained | {d['vs_plain']} |",
            f"| our decoder / GBNF | {d['vs_gbnf']} |",
            f"| GBNF / unconstrained | {d['gbnf_vs_plain']} |",
            f"| our decoder, answer tokens only (after rollbacks) | {d['kept_tok_s']} tok/s "
            f"({d['llguidance']['kept']} tokens) |",
            f"| tokens forced by the grammar (jump-forward) | {d['forced_share']:.1%} |",
            f"| mask time per sampled token, p50 / p99 | {d['mask_us']['p50']} µs / {d['mask_us']['p99']} µs "
            f"({d['mask_us']['n']} tokens) |",
            f"| our decoder at {th['threads']} thread(s) / at 1 thread (same prompts, alternating) | "
            f"{th['ratio']} ({th['tok_s'][th['threads']]} / {th['tok_s'][1]} tok/s) |",
            f"| repetition rollbacks | {', '.join(f'{k} {v}' for k, v in sorted(rolled)) or 'none'} |",
            f"| end-to-end latency p50 / p95 (our decoder + self-check, {lat['n']} prompts) | "
            f"{lat['p50_s']} s / {lat['p95_s']} s |",
            f"| API throughput, {ld['clients']} clients, {ld['sent']} of {ld['planned']} requests, "
            f"max_tokens {ld['max_tokens']} | {ld['req_s']} req/s "
            f"(p50 {ld['p50_s']} s, p95 {ld['p95_s']} s per request) |",
            f"| failed requests | {ld['failed']} |",
            "",
        ]
    )


def parse_args(argv: list[str] | None) -> BenchConfig:
    """The benchmark config from defaults, `--config FILE` and `--key value` flags."""
    return parse_config(BenchConfig, argv)


def main(config: BenchConfig) -> int:
    """Run every measurement, print the Markdown section, save JSON and Markdown."""
    from run.engine import Engine

    out = Path(config.out_dir)
    dump_config(config, out / "config.yaml")
    engine = Engine(engine_config(config))
    print(f"bench: model {engine.model_path}; results go to {out}", file=sys.stderr, flush=True)
    results = bench(
        engine,
        decode_max_tokens=config.decode_max_tokens,
        plain_max_tokens=config.plain_max_tokens,
        rounds=config.rounds,
        clients=config.clients,
        requests=config.requests,
        load_max_tokens=config.load_max_tokens,
        load_seconds=config.load_seconds,
    )
    (out / "bench.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    section = markdown(results)
    (out / "bench.md").write_text(section, encoding="utf-8")
    from train.bench import write_section

    write_section(Path("docs/benchmarks.md"), "serve", section)
    print(section)
    return 0 if results["load"]["failed"] == 0 else 1


if __name__ == "__main__":
    with user_errors():
        sys.exit(main(parse_args(None)))
