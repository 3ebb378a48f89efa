"""Fused LoRA projections for the CPU backend: the frozen base and the adapter in one autograd op.

PEFT computes a LoRA projection as base(x) + B(A(dropout(x))) * scaling with the adapter in
float32. On a bfloat16 base (Unsloth's pick on a CPU with AMX or AVX512-BF16) that means a
float32 copy of every projection's input, a float32 output the size of the base's, its scaling
and its cast back, in the forward pass and again in the backward pass, plus an autograd node for
each. Here one op computes

    y = x @ W.T + (x @ A.T) @ (scaling * B).T

in the base's dtype, with the scaling folded into the rank-r factor, and its backward computes

    dx = dy @ W + (dy @ (scaling * B)) @ A,  dA = (dy @ (scaling * B)).T @ x,  dB = scaling * dy.T @ (x @ A.T)

with the adapter's gradients returned in its own dtype (float32). This is the mixed precision that
autocast gives, and the idea of Unsloth's fused LoRA kernels on a GPU. In float32 it is the same
computation as PEFT's, in another order. Projections with dropout, several active adapters, a
LoRA variant (DoRA), a merged or disabled adapter, or a base that is not a plain Linear keep
PEFT's forward, checked on every call.
"""

from __future__ import annotations

import functools
import types
from typing import Any


@functools.cache
def _fused_op() -> Any:
    import torch

    class FusedLoRALinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, lora_a, lora_b, scaling):
            dtype = x.dtype
            a = lora_a.to(dtype)
            b = (lora_b * scaling).to(dtype)
            flat = x.reshape(-1, x.shape[-1])
            xa = flat @ a.t()
            base = flat @ weight.t() if bias is None else torch.addmm(bias, flat, weight.t())
            out = torch.addmm(base, xa, b.t())
            ctx.save_for_backward(flat, weight, a, b, xa)
            ctx.scaling = scaling
            ctx.shape = x.shape
            return out.view(*x.shape[:-1], weight.shape[0])

        @staticmethod
        def backward(ctx, grad):
            flat, weight, a, b, xa = ctx.saved_tensors
            needs = ctx.needs_input_grad
            dy = grad.reshape(-1, grad.shape[-1]).to(flat.dtype)
            dyb = dy @ b
            dx = torch.addmm(dy @ weight, dyb, a).view(ctx.shape) if needs[0] else None
            da = (dyb.t() @ flat).to(torch.float32) if needs[3] else None
            db = (dy.t() @ xa).to(torch.float32).mul_(ctx.scaling) if needs[4] else None
            return dx, None, None, da, db, None

    return FusedLoRALinear


def _fused_forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    """PEFT lora.Linear.forward, fused where the projection is plain LoRA (see the module doc)."""
    import torch

    plain = not args and not kwargs and not self.disable_adapters and not self.merged
    if plain:
        active = [name for name in self.active_adapters if name in self.lora_A]
        plain = len(active) == 1 and active[0] not in getattr(self, "lora_variant", {})
        plain = plain and not getattr(self, "use_dora", {}).get(active[0], False)
    if plain:
        name = active[0]
        base = self.base_layer
        plain = (
            type(base) is torch.nn.Linear
            and isinstance(self.lora_dropout[name], torch.nn.Identity)
            and x.dtype == base.weight.dtype
            and not torch.is_autocast_enabled(x.device.type)
        )
    if not plain:
        return type(self).forward(self, x, *args, **kwargs)
    a, b = self.lora_A[name].weight, self.lora_B[name].weight
    return _fused_op().apply(x, base.weight, base.bias, a, b, self.scaling[name])


def fuse_lora(model: Any) -> int:
    """Route every PEFT LoRA Linear of `model` through the fused op; returns how many."""
    from peft.tuners.lora.layer import Linear

    count = 0
    for module in model.modules():
        if type(module) is Linear:
            module.forward = types.MethodType(_fused_forward, module)
            count += 1
    return count


def unfuse_lora(model: Any) -> None:
    """Back to PEFT's own forward everywhere."""
    for module in model.modules():
        if "forward" in vars(module) and getattr(module.forward, "__func__", None) is _fused_forward:
            del module.forward
