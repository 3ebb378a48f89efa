"""GPU tier of the trainer benchmark: 4-bit QLoRA steps on a random model shaped like Llama 3.1 8B.

    python -m train.bench_gpu [--steps 20] [--batch 2] [--seq-len 1024]

Throughput and VRAM do not depend on the weights' values, so the model is built from its config
alone (no download), saved once in bf16 under outputs/bench-train-gpu/, and loaded 4-bit by each
trainer in a fresh process: our trainer's model (Unsloth FastLanguageModel, gradient
checkpointing "unsloth") and plain Hugging Face + PEFT with bitsandbytes NF4 (gradient
checkpointing on). Both run the same transformers Trainer loop on the same random tokens.
Writes steps/s, tokens/s and peak VRAM of each, and their ratio, to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

from data.paths import OUTPUTS

ROOT = OUTPUTS / "bench-train-gpu"
MARK = "train-gpu"
WARMUP = 2  # steps left out of the timing: kernel compilation and allocator warm-up

# Llama 3.1 8B's shape (its config.json), so the random model costs what the real one does.
LLAMA31_8B = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    "tie_word_embeddings": False,
    "bos_token_id": 128000,
    "eos_token_id": 128009,
}


def build_model(model_dir: Path) -> None:
    """Save a randomly initialised Llama-3.1-8B-shaped model (bf16) and a tokenizer, once."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from train.base import embedded_tokenizer

    if (model_dir / "config.json").is_file():
        return
    print(f"bench-gpu: building a random Llama-3.1-8B-shaped model in {model_dir} (once)", flush=True)
    with torch.device("cuda"):
        model = LlamaForCausalLM._from_config(LlamaConfig(**LLAMA31_8B), torch_dtype=torch.bfloat16)
    model.save_pretrained(model_dir, max_shard_size="5GB")
    # Any tokenizer will do: the data are random token ids; loaders only need the files.
    AutoTokenizer.from_pretrained(embedded_tokenizer()).save_pretrained(model_dir)


def _data(steps: int, batch: int, seq_len: int, seed: int) -> list[dict]:
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, LLAMA31_8B["vocab_size"], ((steps + WARMUP) * batch, seq_len), generator=g)
    return [
        {"input_ids": row.tolist(), "labels": row.tolist(), "attention_mask": [1] * seq_len} for row in ids
    ]


def _load_ours(model_dir: Path, seq_len: int):
    from train.config import TrainConfig
    from train.trainer import load_model

    config = TrainConfig(
        base_model=str(model_dir),
        load_in_4bit=True,
        max_seq_length=seq_len,
        gradient_checkpointing="unsloth",
    )
    return load_model(config, str(model_dir))[0]


def _load_plain(model_dir: Path):
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from train.config import TrainConfig

    defaults = TrainConfig()
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        quantization_config=quant,
        dtype=torch.bfloat16,
        device_map={"": 0},
        attn_implementation="sdpa",
    )
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    lora = LoraConfig(
        r=defaults.r,
        lora_alpha=defaults.alpha,
        lora_dropout=0.0,
        target_modules=defaults.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def worker(name: str, steps: int, batch: int, seq_len: int, model_dir: Path) -> dict:
    """One trainer's QLoRA steps; returns steps/s, tokens/s (after warm-up) and peak VRAM."""
    import torch
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    model = _load_ours(model_dir, seq_len) if name == "ours" else _load_plain(model_dir)
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    args = TrainingArguments(
        output_dir=str(ROOT / name),
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        max_steps=steps + WARMUP,
        learning_rate=2e-4,
        lr_scheduler_type="constant",
        optim="adamw_8bit",
        bf16=True,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=3407,
        remove_unused_columns=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(_data(steps, batch, seq_len, 3407)),
        callbacks=[Clock()],
    )
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    timed = stamps[WARMUP - 1 :]  # from the end of the last warm-up step to the end of the run
    seconds = timed[-1] - timed[0]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "steps_per_s": round(steps / seconds, 3),
        "tokens_per_s": round(steps * batch * seq_len / seconds, 1),
        "peak_vram_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
        "final_loss": losses[-1],
        "gpu": torch.cuda.get_device_name(0),
    }


def markdown(results: dict, steps: int, batch: int, seq_len: int, command: str) -> str:
    """The docs/benchmarks.md section."""
    rows = [
        ("stepsmith trainer's model (Unsloth 4-bit, gradient checkpointing unsloth)", results["ours"]),
        ("plain HF + PEFT, bitsandbytes NF4, gradient checkpointing", results["plain"]),
    ]
    lines = [
        "## Trainer on a GPU: Unsloth QLoRA vs plain HF + PEFT",
        "",
        f"Date: {datetime.date.today().isoformat()}. GPU: {results['ours']['gpu']}. Command: `{command}`.",
        f"Random Llama-3.1-8B-shaped model, LoRA r=16 on all projections, {steps} timed steps "
        f"(after {WARMUP} warm-up steps) of {batch} x {seq_len} random tokens, bf16, 8-bit AdamW.",
        "",
        "| trainer | steps/s | tokens/s | peak VRAM (MB) |",
        "|---|---|---|---|",
    ]
    for name, r in rows:
        lines.append(f"| {name} | {r['steps_per_s']} | {r['tokens_per_s']} | {r['peak_vram_mb']} |")
    speed = results["ours"]["tokens_per_s"] / results["plain"]["tokens_per_s"]
    vram = results["ours"]["peak_vram_mb"] / results["plain"]["peak_vram_mb"]
    lines += ["", f"Same run: Unsloth is **{speed:.2f}x** as fast and uses **{vram:.2f}x** the peak VRAM."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from train.bench import write_section

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per trainer")
    parser.add_argument("--batch", type=int, default=2, help="sequences per step")
    parser.add_argument("--seq-len", type=int, default=1024, help="tokens per sequence")
    parser.add_argument("--out", default="docs/benchmarks.md", help="markdown file to update")
    parser.add_argument("--worker", choices=["ours", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("error: the GPU tier needs a CUDA GPU; on CPU run `just bench-train`", file=sys.stderr)
        return 2
    model_dir = ROOT / "llama3.1-8b-random"
    if args.worker:
        result = worker(args.worker, args.steps, args.batch, args.seq_len, model_dir)
        Path(args.result).write_text(json.dumps(result))
        return 0
    build_model(model_dir)
    results = {}
    for name in ("ours", "plain"):
        print(f"bench-gpu: {name}", flush=True)
        out = ROOT / f"{name}.json"
        flags = ["--steps", str(args.steps), "--batch", str(args.batch), "--seq-len", str(args.seq_len)]
        cmd = [sys.executable, "-m", "train.bench_gpu", "--worker", name, "--result", str(out), *flags]
        subprocess.run(cmd, check=True)
        results[name] = json.loads(out.read_text())
    command = "python -m train.bench_gpu " + " ".join(argv if argv is not None else sys.argv[1:])
    section = markdown(results, args.steps, args.batch, args.seq_len, command.strip())
    write_section(Path(args.out), MARK, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
