"""Trainer benchmark: our Unsloth trainer against plain TRL + PEFT (fp32), same model, data and steps.

    python -m train.bench [--steps 12] [--batch 4] [--repeats 2] [--out docs/benchmarks.md]

Runs, each in its own process (Unsloth patches TRL on import, and peak RSS is per process):
our trainer as shipped (Unsloth's dtype pick, shared-prefix step); the same in float32 where
Unsloth picked another dtype (isolates precision); our trainer with Unsloth's stock step
(prefix_sharing false, isolates what train/step.py adds); our trainer with PEFT's own LoRA
forward (fused_lora false, isolates what train/lora.py adds); and plain TRL + PEFT in float32.
With --repeats N every worker runs N times, in reversed order on every other round, so slow
drift of the machine's speed hits all of them alike; each round gives its own ratio, and the
table reports medians.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from data.paths import OUTPUTS

BENCH_ROOT = OUTPUTS / "bench-train"
MARK = "train"
WORKERS = ("ours", "ours-fp32", "ours-stock", "ours-peft", "trl")


def machine() -> str:
    """CPU model and core count (and the GPU, if any) in a few words."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the section between <!-- bench:name --> markers in docs/benchmarks.md."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _data_dir() -> Path:
    processed = Path("data/processed")
    if (processed / "train.messages.jsonl").is_file():
        return processed
    out = BENCH_ROOT / "data"
    subprocess.run([sys.executable, "-m", "data", "--out-dir", str(out), "--tokenizer", "none"], check=True)
    return out


def _worker_ours(steps: int, batch: int, data_dir: Path, name: str) -> dict:
    from train.__main__ import main
    from train.config import TrainConfig

    run = BENCH_ROOT / name
    config = TrainConfig(
        run=name,
        prefix_sharing=name != "ours-stock",
        fused_lora=name != "ours-peft",
        dtype="float32" if name == "ours-fp32" else "auto",
        output_root=str(BENCH_ROOT),
        data_dir=str(data_dir),
        max_steps=steps,
        per_device_batch_size=batch,
        gradient_accumulation=1,
        eval_steps=0,
        early_stopping_patience=0,
        domain_balance="none",
        gradient_checkpointing="false",
        group_by_length=False,  # the same random batches as the baseline, padding included
        resume=False,
        logging_steps=1,
        learning_rate=1e-3,
        warmup_ratio=0.0,
        scheduler="constant",
        limit=steps * batch,
    )
    main(config)
    summary = json.loads((run / "train_summary.json").read_text())
    losses = [
        json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x
    ]
    return {
        "tokens_per_s": summary["tokens_per_s"],
        "peak_rss_mb": summary["peak_rss_mb"],
        "final_loss": losses[-1],
        "wall_time_s": summary["wall_time_s"],
        "tokens": summary["trained_tokens"],
        "dtype": summary["dtype"],
    }


def _worker_trl(steps: int, batch: int, data_dir: Path) -> dict:
    """Plain Hugging Face: transformers fp32 model, PEFT LoRA, stock TRL SFTTrainer."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer
    from trl import SFTConfig, SFTTrainer

    from train.base import resolve_base
    from train.config import TrainConfig
    from train.dataset import Stats, build_split, read_messages
    from train.trainer import peak_memory_mb

    defaults = TrainConfig()
    base = resolve_base("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    torch.manual_seed(defaults.seed)
    model = get_peft_model(
        model,
        LoraConfig(
            r=defaults.r,
            lora_alpha=defaults.alpha,
            lora_dropout=0.0,
            target_modules=defaults.target_modules,
            task_type="CAUSAL_LM",
        ),
    )
    rows = read_messages(data_dir / "train.messages.jsonl")[: steps * batch]
    examples = build_split(tokenizer, rows, defaults.max_seq_length, {}, Stats())
    counted = {"tokens": 0}

    class Counting(SFTTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            # TRL 1.15's SFTTrainer computes the loss with a Triton fused LM head, which has no
            # CPU driver; the model's own cross-entropy (transformers' Trainer) is the plain path.
            counted["tokens"] += int(inputs["attention_mask"].sum())
            return Trainer.compute_loss(self, model, inputs, *args, **kwargs)

    args = SFTConfig(
        output_dir=str(BENCH_ROOT / "trl"),
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        max_steps=steps,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        max_length=defaults.max_seq_length,
        use_cpu=not torch.cuda.is_available(),
        seed=defaults.seed,
        # fp32 and no checkpointing, as our CPU run. TRL's own defaults are bf16 autocast and
        # gradient checkpointing; on a CPU without native bf16 (AVX2 only) that combination
        # emulates bf16 and runs many times slower, which would flatter the ratio.
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
    )
    trainer = Counting(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(
            [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples]
        ),
        processing_class=tokenizer,
    )
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "tokens_per_s": round(counted["tokens"] / wall, 1),
        **peak_memory_mb(),
        "final_loss": losses[-1],
        "wall_time_s": round(wall, 1),
        "tokens": counted["tokens"],
        "dtype": str(model.dtype).removeprefix("torch."),
    }


def _run_worker(name: str, steps: int, batch: int, data_dir: Path) -> dict:
    out = BENCH_ROOT / f"{name}.json"
    cmd = [sys.executable, "-m", "train.bench", "--worker", name, "--steps", str(steps)]
    cmd += ["--batch", str(batch), "--data-dir", str(data_dir), "--result", str(out)]
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def run(steps: int, batch: int, repeats: int) -> dict[str, list[dict]]:
    """Every worker `repeats` times, each in a fresh process: {worker: [result per round]}."""
    data_dir = _data_dir()
    rounds: dict[str, list[dict]] = {}
    for k in range(repeats):
        order = WORKERS if k % 2 == 0 else WORKERS[::-1]
        for name in order:
            shipped = rounds.get("ours", [{}])[-1].get("dtype")
            if name == "ours-fp32" and shipped == "float32":
                continue  # Unsloth already picked float32 here: the shipped run is this run
            print(f"bench-train: round {k + 1}/{repeats}: {name}, {steps} steps x {batch}", flush=True)
            rounds.setdefault(name, []).append(_run_worker(name, steps, batch, data_dir))
    return rounds


def summarize(rounds: dict[str, list[dict]]) -> dict:
    """Median figures per worker, and each worker's tokens/s over plain TRL's, round by round."""
    out: dict = {"rows": {}, "ratios": {}}
    for name, results in rounds.items():
        out["rows"][name] = {
            "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in results), 1),
            "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in results), 1),
            "wall_time_s": round(statistics.median(r["wall_time_s"] for r in results), 1),
            "final_loss": results[-1]["final_loss"],
            "dtype": results[-1]["dtype"],
            "rounds": len(results),
        }
        if name != "trl":
            per_round = [
                round(r["tokens_per_s"] / t["tokens_per_s"], 2)
                for r, t in zip(results, rounds["trl"], strict=True)
            ]
            out["ratios"][name] = {"per_round": per_round, "median": round(statistics.median(per_round), 2)}
    return out


LABELS = {
    "ours": "stepsmith trainer as shipped (Unsloth CPU backend, LoRA, shared-prefix step)",
    "ours-fp32": "stepsmith trainer in float32 (`--dtype float32`)",
    "ours-stock": "stepsmith trainer, Unsloth's stock step (`--prefix-sharing false`)",
    "ours-peft": "stepsmith trainer, PEFT's LoRA forward (`--fused-lora false`)",
    "trl": "plain TRL SFTTrainer + PEFT, fp32 (model's own cross-entropy)",
}


def markdown(summary: dict, steps: int, batch: int, command: str) -> str:
    """The docs/benchmarks.md section."""
    rows, ratios = summary["rows"], summary["ratios"]
    repeats = rows["trl"]["rounds"]
    lines = [
        "## Trainer: Unsloth vs plain TRL",
        "",
        f"Date: {datetime.date.today().isoformat()}. Machine: {machine()}. Command: `{command}`.",
        f"SmolLM2-135M-Instruct, LoRA r=16 on all projections, {steps} steps x {batch} examples of the "
        "prepared training split (the same examples and random batches, padding included, for "
        "every run), max length 1024, no gradient checkpointing, constant learning rate 1e-3. "
        "Tokens/s counts non-padding tokens. Our trainer runs in the dtype Unsloth picks for the "
        "machine (bfloat16 on a CPU with AMX or AVX512-BF16, else float32). The baseline "
        "turns off two TRL defaults (bf16 autocast, gradient checkpointing) that would slow it down "
        "further on a CPU without native bf16, and computes its loss with the model's own "
        "cross-entropy, since TRL 1.15's fused LM head is a Triton kernel with no CPU driver. "
        f"Each run went {repeats} time(s), in reversed order on every other round; figures are medians.",
        "",
        "| trainer | dtype | tokens/s | x plain TRL (per round) | peak RSS (MB) | final loss | wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in WORKERS:
        if name not in rows:
            continue
        r = rows[name]
        ratio = ratios.get(name)
        speed = "1" if ratio is None else f"{ratio['median']} ({', '.join(map(str, ratio['per_round']))})"
        cells = [LABELS[name], r["dtype"], r["tokens_per_s"], speed, r["peak_rss_mb"]]
        cells += [f"{r['final_loss']:.3f}", r["wall_time_s"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    memory = rows["ours"]["peak_rss_mb"] / rows["trl"]["peak_rss_mb"]
    shipped, stock = ratios["ours"]["median"], ratios["ours-stock"]["median"]
    lines += [
        "",
        f"Median over the rounds: our trainer as shipped runs at **{shipped}x** plain TRL's tokens/s, "
        f"at **{memory:.2f}x** its peak RSS. With Unsloth's stock step instead of the shared-prefix "
        f"step (train/step.py) it runs at {stock}x, so that step is worth {shipped / stock:.2f}x here.",
    ]
    if "ours-peft" in ratios:
        peft = ratios["ours-peft"]["median"]
        lines[-1] += (
            f" With PEFT's own LoRA forward instead of the fused one (train/lora.py) it runs at "
            f"{peft}x, so the fused projection is worth {shipped / peft:.2f}x here."
        )
    if "ours-fp32" in ratios:
        fp32 = ratios["ours-fp32"]["median"]
        lines[-1] += (
            f" In float32, like the baseline, it runs at {fp32}x: Unsloth's {rows['ours']['dtype']} "
            f"pick is worth {shipped / fp32:.2f}x here."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per trainer")
    parser.add_argument("--batch", type=int, default=4, help="examples per step")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of every run; ratios are medians")
    parser.add_argument("--out", default="docs/benchmarks.md", help="markdown file to update")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.worker == "trl":
            result = _worker_trl(args.steps, args.batch, Path(args.data_dir))
        else:
            result = _worker_ours(args.steps, args.batch, Path(args.data_dir), args.worker)
        Path(args.result).write_text(json.dumps(result))
        return 0
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: needs at least 1 round")
    summary = summarize(run(args.steps, args.batch, args.repeats))
    (BENCH_ROOT / "summary.json").write_text(json.dumps(summary, indent=2))
    command = "python -m train.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    section = markdown(summary, args.steps, args.batch, command.strip())
    write_section(Path(args.out), MARK, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
