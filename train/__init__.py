"""Fine-tune with Unsloth: LoRA on CPU, QLoRA on CUDA (python -m train)."""
