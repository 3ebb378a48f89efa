"""GPU tier: 4-bit QLoRA through Unsloth on a tiny random Llama with SmolLM2's tokenizer, then its
merge at 16 bits. `just gpu-check` runs it on a machine with CUDA; elsewhere it skips."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.gpu


def test_qlora_steps_on_a_tiny_random_llama_then_the_16_bit_merge(tmp_path):
    import torch
    import unsloth  # noqa: F401  (before transformers, as Unsloth asks, so its patches apply)
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from export.merge import merge
    from export.verify import probe_text
    from train.__main__ import main
    from train.base import embedded_tokenizer
    from train.config import TrainConfig

    tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer())
    # Hidden size 256: wide enough for bitsandbytes' 4-bit blocks, small enough to build in seconds.
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model_dir = tmp_path / "tiny-llama"
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(model_dir)  # the 16-bit base
    tokenizer.save_pretrained(model_dir)
    row = {
        "id": "a",
        "domain": "x",
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}],
    }
    (tmp_path / "train.messages.jsonl").write_text((json.dumps(row) + "\n") * 8)
    run = TrainConfig(
        run="gpu",
        base_model=str(model_dir),
        load_in_4bit=True,
        data_dir=str(tmp_path),
        output_root=str(tmp_path),
        max_steps=4,
        eval_steps=0,
        domain_balance="none",
        per_device_batch_size=4,
        gradient_accumulation=1,
        logging_steps=1,
        max_seq_length=128,
    )
    assert main(run) == 0
    summary = json.loads((tmp_path / "gpu" / "train_summary.json").read_text())
    assert summary["global_step"] == 4 and summary["peak_vram_mb"] > 0

    # The adapter merges into the 16-bit weights it was trained against (4-bit) and changes them.
    run_dir = tmp_path / "gpu"
    info = merge(
        run_dir, str(model_dir), "test", str(model_dir), run_dir / "merged", ["q4_k_m"], probe_text()
    )
    assert info["dtype"] in ("bfloat16", "float16")
    merged = load_file(str(run_dir / "merged" / "model.safetensors"))
    base = load_file(str(model_dir / "model.safetensors"))
    changed = [k for k in base if "q_proj" in k and not torch.equal(base[k], merged[k])]
    assert changed, "the merge left every q_proj weight as it was"
