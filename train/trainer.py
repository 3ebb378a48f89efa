"""The Unsloth SFT run: model, LoRA, weighted completion-only loss, early stopping, resume."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from data.paths import CACHE
from data.settings import UserError
from train.config import TrainConfig


class TrainError(UserError, RuntimeError):
    """A training problem a user can fix; the message says which knob or command."""


def cuda_available() -> bool:
    """Whether a CUDA device is visible to torch."""
    import torch

    return torch.cuda.is_available()


def check_backend(config: TrainConfig, source: str) -> None:
    """Fail fast, before any model is loaded, when the config cannot run on this machine."""
    if config.load_in_4bit and not cuda_available():
        raise TrainError(
            f"{source} asks for 4-bit QLoRA (load_in_4bit: true), which needs a CUDA GPU, and none was "
            "found; on CPU train the embedded default: --config configs/smollm2-135m-cpu.yaml"
        )
    if config.packing and config.domain_balance == "loss":
        raise TrainError(
            "packing merges examples of different domains into one sequence, so per-example loss "
            "weights cannot apply: use --domain-balance sampling (or none) with --packing true"
        )


def _gradient_checkpointing(value: str) -> Any:
    return {"unsloth": "unsloth", "true": True, "false": False}[value.lower()]


# Unsloth writes the trainer modules it generates into ./unsloth_compiled_cache unless told
# otherwise; they are build products, so they go with the other caches under outputs/.
COMPILE_CACHE = CACHE / "unsloth_compiled_cache"


def load_model(config: TrainConfig, base: str) -> tuple[Any, Any]:
    """Unsloth FastLanguageModel with LoRA adapters on every target module."""
    # Read once, when unsloth_zoo is first imported; a user's own setting wins.
    os.environ.setdefault("UNSLOTH_COMPILE_LOCATION", str(COMPILE_CACHE.resolve()))
    import torch
    from unsloth import FastLanguageModel

    gc = _gradient_checkpointing(config.gradient_checkpointing)
    extra = {}
    if "LOCAL_RANK" in os.environ:
        # Data parallel under `accelerate launch` / torchrun: each process holds a whole copy of
        # the model on its own GPU (Unsloth's documented multi-GPU route).
        extra["device_map"] = {"": int(os.environ["LOCAL_RANK"])}
    try:
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=base,
            max_seq_length=config.max_seq_length,
            dtype=None if config.dtype == "auto" else getattr(torch, config.dtype),
            load_in_4bit=config.load_in_4bit,
            use_gradient_checkpointing=gc,
            **extra,
        )
    except OSError as e:
        raise TrainError(
            f"cannot load base model {base!r}: {str(e).splitlines()[0]}. Pass a local folder with "
            "--base-model, or train the embedded default with --config configs/smollm2-135m-cpu.yaml"
        ) from None
    model = FastLanguageModel.get_peft_model(
        model,
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=config.target_modules,
        bias="none",
        use_gradient_checkpointing=gc,
        random_state=config.seed,
        max_seq_length=config.max_seq_length,
    )
    if config.fused_lora and not cuda_available():
        # On CUDA Unsloth patches the projections with its own kernels; see train/lora.py.
        from train.lora import fuse_lora

        count = fuse_lora(model)
        print(f"train: fused LoRA on {count} projections")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


class WeightedCollator:
    """TRL's padding collator plus a per-example `weight` tensor for domain loss reweighting."""

    def __init__(self, pad_token_id: int) -> None:
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.base = DataCollatorForLanguageModeling(pad_token_id=pad_token_id)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self.base([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples])
        batch["weight"] = torch.tensor([float(e.get("weight", 1.0)) for e in examples])
        return batch


def shared_prefix_parts(config: TrainConfig, model: Any) -> tuple[Any, Any] | None:
    """(decoder, LM head) for the shared-prefix loss (train/step.py), or None for the stock step.

    Says which step runs and why, so a run's speed is never a surprise.
    """
    import torch

    from train.step import decoder_and_head

    if not config.prefix_sharing:
        return None
    if torch.cuda.is_available() or config.packing:
        # On CUDA Unsloth swaps in its own fused attention and loss kernels; this step calls the
        # stock modules and has not been measured there. Packed rows share no prefix.
        print("train: prefix sharing is for the CPU backend without packing; using Unsloth's stock step")
        return None
    parts = decoder_and_head(model)
    if parts is None:
        print(
            "train: this model or setting needs the stock step "
            "(logit transforms, a trained LM head, or gradient checkpointing)"
        )
    else:
        print(
            "train: shared-prefix step: a batch's common prompt prefix runs once, "
            "and logits only on reply tokens"
        )
    return parts


def weighted_trainer_class() -> type:
    """SFTTrainer whose loss weights each example by its domain weight.

    Built lazily: TRL must be imported after Unsloth, which patches it. With `shared_prefix`
    set (see shared_prefix_parts) a training batch goes through train/step.py, which weights
    each token by its example's weight. Otherwise examples with weight 1 take the stock (Unsloth
    chunked cross-entropy) path unchanged, and weighted examples go through the same path one
    row at a time, each scaled by its weight.
    """
    from trl import SFTTrainer

    from train.step import shared_prefix_loss

    class WeightedSFTTrainer(SFTTrainer):
        trained_tokens = 0
        shared_prefix: tuple[Any, Any] | None = None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weights = inputs.pop("weight", None)
            if model.training and "attention_mask" in inputs:
                self.trained_tokens += int(inputs["attention_mask"].sum())
            if self.shared_prefix is not None and model.training and not return_outputs:
                return self._shared_prefix_loss(inputs, weights, num_items_in_batch)
            if weights is None or bool((weights == 1).all()) or return_outputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            total = 0.0
            for i, weight in enumerate(weights.tolist()):
                keep = inputs["attention_mask"][i].bool()
                row = {
                    k: v[i : i + 1, keep]
                    for k, v in inputs.items()
                    if k in ("input_ids", "labels", "attention_mask")
                }
                loss = super().compute_loss(model, row, False, num_items_in_batch)
                total = total + weight * loss
            # With num_items_in_batch each per-row loss is already a share of the batch's token sum;
            # without it each is a per-row mean, so average the rows.
            return total if num_items_in_batch is not None else total / len(weights)

        def _shared_prefix_loss(self, inputs, weights, num_items_in_batch):
            # The stock Trainer's contract: with an accumulation-wide label count (and a model
            # that takes it) the loss is a share of that sum and is not divided again by the
            # accumulation steps; otherwise it is this batch's mean and the Trainer divides.
            by_count = num_items_in_batch is not None and self.model_accepts_loss_kwargs
            decoder, head = self.shared_prefix
            loss, _ = shared_prefix_loss(
                decoder, head, inputs, weights, num_items_in_batch if by_count else None
            )
            if by_count and self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
            return loss

    return WeightedSFTTrainer


class MetricsLog:
    """A TrainerCallback factory writing every log line to metrics.jsonl."""

    @staticmethod
    def create(path: Path) -> Any:
        from transformers import TrainerCallback

        class _Log(TrainerCallback):
            # elapsed_s (training seconds so far, evaluations included) maps a checkpoint to the
            # minutes it cost, for the learning curve (eval/sweep.py).
            start = time.perf_counter()

            def on_train_begin(self, args, state, control, **kwargs):
                self.start = time.perf_counter()

            def on_log(self, args, state, control, logs=None, **kwargs):
                keep = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}
                if not keep:
                    return
                elapsed = round(time.perf_counter() - self.start, 1)
                row = {"step": state.global_step, "epoch": round(state.epoch or 0, 4), "elapsed_s": elapsed}
                with path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({**row, **keep}) + "\n")

        return _Log()


def sft_config(config: TrainConfig, run_dir: Path, has_val: bool) -> Any:
    """TRL SFTConfig from our TrainConfig."""
    import torch
    from trl import SFTConfig

    on_cuda = torch.cuda.is_available()
    # Mixed precision on CUDA follows the weights' dtype; on CPU Unsloth sets its own defaults.
    auto_bf16 = on_cuda and torch.cuda.is_bf16_supported()
    bf16 = on_cuda and (config.dtype == "bfloat16" or (config.dtype == "auto" and auto_bf16))
    fp16 = on_cuda and (config.dtype == "float16" or (config.dtype == "auto" and not auto_bf16))
    evaluate = has_val and config.eval_steps > 0
    return SFTConfig(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=config.per_device_batch_size,
        per_device_eval_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps > 0 else -1,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the total steps
        lr_scheduler_type=config.scheduler,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=config.eval_steps if evaluate else None,
        save_strategy="steps",
        save_steps=config.eval_steps if config.eval_steps > 0 else 50,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=evaluate,
        metric_for_best_model="eval_loss" if evaluate else None,
        greater_is_better=False if evaluate else None,
        max_length=config.max_seq_length,
        packing=config.packing,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        # Explicit, because TRL's own default is on: left unset, a "false" here still trained
        # with checkpointing (recomputing every layer in the backward pass).
        gradient_checkpointing=_gradient_checkpointing(config.gradient_checkpointing) is not False,
        remove_unused_columns=False,  # keep `weight` for the collator
        bf16=bf16,
        fp16=fp16,
        # Unsloth's pick on CUDA (8-bit states); on CPU Unsloth swaps in fused torch AdamW.
        optim="adamw_8bit" if on_cuda else "adamw_torch_fused",
        report_to="none",
        disable_tqdm=False,
        dataloader_num_workers=0,
        # Under DDP every LoRA parameter gets a gradient on every step; skipping the search for
        # unused ones saves a pass and avoids a clash with gradient checkpointing.
        ddp_find_unused_parameters=False,
    )


def peak_memory_mb() -> dict[str, float]:
    """Peak host RSS, and peak CUDA memory where there is a GPU."""
    import resource

    import torch

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["peak_vram_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    return out


def run_training(trainer: Any, config: TrainConfig, run_dir: Path) -> dict[str, Any]:
    """trainer.train() with resume, clear out-of-memory errors and throughput bookkeeping."""
    import torch
    from transformers.trainer_utils import get_last_checkpoint

    checkpoints = run_dir / "checkpoints"
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() and config.resume else None
    if last:
        print(f"train: resuming from {last}", flush=True)
    else:
        # A fresh run: an earlier run's log lines and checkpoints would mix into this one's
        # curves and best-checkpoint choice (MetricsLog appends to metrics.jsonl).
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        shutil.rmtree(checkpoints, ignore_errors=True)
    start = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=last)
    except (torch.OutOfMemoryError, MemoryError) as e:
        raise TrainError(
            f"out of memory ({type(e).__name__}) at per_device_batch_size={config.per_device_batch_size}, "
            f"max_seq_length={config.max_seq_length}: lower --per-device-batch-size (and raise "
            "--gradient-accumulation to keep the effective batch) or --max-seq-length"
        ) from None
    wall = time.perf_counter() - start
    return {
        "resumed_from": last,
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "best_eval_loss": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "wall_time_s": round(wall, 1),
        "trained_tokens": trainer.trained_tokens,
        "tokens_per_s": round(trainer.trained_tokens / wall, 1) if wall > 0 else None,
        **peak_memory_mb(),
    }
