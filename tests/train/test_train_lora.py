"""The fused LoRA projection gives PEFT's outputs and gradients, and steps aside where it does not apply."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora.layer import Linear as LoraLinear

from train.lora import fuse_lora, unfuse_lora


class _Block(torch.nn.Module):
    def __init__(self, bias: bool) -> None:
        super().__init__()
        self.up = torch.nn.Linear(48, 96, bias=bias)
        self.down = torch.nn.Linear(96, 40, bias=bias)

    def forward(self, x):
        return self.down(torch.nn.functional.silu(self.up(x)))


def _model(dtype: torch.dtype, bias: bool = True, dropout: float = 0.0):
    torch.manual_seed(0)
    model = get_peft_model(
        _Block(bias), LoraConfig(r=8, lora_alpha=16, lora_dropout=dropout, target_modules=["up", "down"])
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # B starts at zero; give the adapter a real contribution
    for name, p in model.named_parameters():
        if "lora_" not in name:
            p.data = p.data.to(dtype)
    return model


def _run(model, x):
    x = x.clone().requires_grad_()
    out = model(x)
    (out.float() * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return out.detach(), x.grad, grads, out.grad_fn


def _nodes(grad_fn) -> set[str]:
    """Names of every autograd node that produced an output."""
    names, seen, todo = set(), set(), [grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and id(node) not in seen:
            seen.add(id(node))
            names.add(type(node).__name__)
            todo.extend(n for n, _ in node.next_functions)
    return names


def _rel(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("bias", [True, False])
def test_float32_matches_peft(bias):
    model = _model(torch.float32, bias)
    x = torch.randn(2, 7, 48)
    want, want_dx, want_grads, _ = _run(model, x)
    assert fuse_lora(model) == 2
    got, dx, grads, grad_fn = _run(model, x)
    assert "FusedLoRALinearBackward" in _nodes(grad_fn)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    assert torch.allclose(dx, want_dx, atol=1e-5, rtol=1e-5)
    assert grads.keys() == want_grads.keys() and len(grads) == 4
    for name in grads:
        assert grads[name].dtype == torch.float32
        assert _rel(grads[name], want_grads[name]) < 1e-5, name


def test_bfloat16_base_agrees_with_peft_to_rounding():
    # PEFT runs the adapter in float32 on a bfloat16 base; the fused op runs it in bfloat16, as
    # autocast would. The difference is bfloat16 rounding (8 bits of mantissa), far below what a
    # wrong scaling or transpose gives (scaling by 2 instead of 1 moves the output by ~30%).
    model = _model(torch.bfloat16)
    x = torch.randn(2, 7, 48, dtype=torch.bfloat16)
    want, want_dx, want_grads, _ = _run(model, x)
    fuse_lora(model)
    got, dx, grads, grad_fn = _run(model, x)
    assert "FusedLoRALinearBackward" in _nodes(grad_fn) and got.dtype == torch.bfloat16
    assert _rel(got, want) < 2e-2 and _rel(dx, want_dx) < 2e-2
    for name in grads:
        assert grads[name].dtype == torch.float32
        assert _rel(grads[name], want_grads[name]) < 3e-2, name


def test_dropout_disabled_and_merged_adapters_keep_peft_forward():
    model = _model(torch.float32, dropout=0.5)
    x = torch.randn(3, 48)
    fuse_lora(model)
    torch.manual_seed(1)
    out, *_, grad_fn = _run(model, x)
    assert "FusedLoRALinearBackward" not in _nodes(grad_fn)
    unfuse_lora(model)
    torch.manual_seed(1)
    assert torch.equal(out, _run(model, x)[0])

    model = _model(torch.float32)
    fuse_lora(model)
    with model.disable_adapter(), torch.no_grad():
        plain = model.base_model.model(x)
    base = _Block(True)
    base.load_state_dict(
        {
            k.replace("base_layer.", ""): v
            for k, v in model.base_model.model.state_dict().items()
            if "lora_" not in k
        }
    )
    assert torch.allclose(plain, base(x).detach(), atol=1e-6)
    before = model(x).detach()
    model.merge_adapter()
    assert torch.allclose(model(x).detach(), before, atol=1e-5)
    model.unmerge_adapter()


def test_unfuse_restores_peft_forward():
    model = _model(torch.float32)
    x = torch.randn(2, 48)
    fuse_lora(model)
    unfuse_lora(model)
    assert all("forward" not in vars(m) for m in model.modules())
    assert "FusedLoRALinearBackward" not in _nodes(_run(model, x)[3])


@pytest.mark.model
def test_trainer_fuses_every_projection_of_smollm2_and_agrees_with_peft():
    from train.base import resolve_base
    from train.config import TrainConfig
    from train.trainer import load_model

    config = TrainConfig(gradient_checkpointing="false", dtype="bfloat16")
    model, tokenizer = load_model(config, resolve_base("smollm2"))
    lora = [m for m in model.modules() if type(m) is LoraLinear]
    fused = [m for m in lora if "forward" in vars(m)]
    assert len(fused) == len(lora) == 30 * 7  # every layer's q, k, v, o, gate, up and down projections
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    model.train()
    ids = tokenizer("Open Settings, then tap Security and turn on two-factor sign-in.", return_tensors="pt")
    batch = {**ids, "labels": ids["input_ids"]}
    ours, grads, grad_fn = _run_lm(model, batch)
    assert "FusedLoRALinearBackward" in _nodes(grad_fn)
    unfuse_lora(model)
    want, want_grads, _ = _run_lm(model, batch)
    assert ours == pytest.approx(want, rel=1e-2)
    got = torch.cat([g.flatten() for g in grads.values()])
    ref = torch.cat([g.flatten() for g in want_grads.values()])
    assert _rel(got, ref) < 0.1  # bfloat16 rounding of the adapter path; see the test above


def _run_lm(model, batch):
    out = model(**batch)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return out.loss.item(), grads, out.loss.grad_fn
