"""GPU tier: 4-bit QLoRA through Unsloth on a tiny random Llama with SmolLM2's tokenizer."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.gpu


def test_qlora_steps_on_a_tiny_random_llama(tmp_path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from train.__main__ import main
    from train.base import resolve_base
    from train.config import TrainConfig

    tokenizer = AutoTokenizer.from_pretrained(resolve_base("smollm2"))
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
    LlamaForCausalLM(config).save_pretrained(model_dir)
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
