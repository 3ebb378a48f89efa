"""The GPU trainer benchmark's model is Llama 3.1 8B's shape; without CUDA it says so."""

import pytest


def test_the_random_model_has_llama_3_1_8b_parameter_count():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from train.bench_gpu import LLAMA31_8B

    with torch.device("meta"):  # shapes only, no memory
        model = LlamaForCausalLM(LlamaConfig(**LLAMA31_8B))
    assert sum(p.numel() for p in model.parameters()) == 8_030_261_248  # Meta's published 8.03B


def test_without_cuda_the_gpu_benchmark_stops_with_one_line(capsys):
    import torch

    from train.bench_gpu import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main([]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: the GPU tier needs a CUDA GPU; on CPU run `just bench-train`"
    )
