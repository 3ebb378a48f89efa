"""The shared-prefix loss: a batch's common prompt prefix runs once, and the LM head only on reply tokens.

Every stepsmith example starts with the same system prompt (172 of about 450 tokens in the shipped
data), and only the reply carries a label. The stock step runs that prefix once per example and
computes logits over the whole vocabulary at every position. This step instead

1. runs the prefix that all rows of the batch share once, as a batch of one, keeping its keys and
   values in the model's own KV cache (with gradients);
2. runs the rows' remainders against that cache, with positions continuing after the prefix, in
   right-padded groups of similar length (see row_groups). Under causal attention a real token
   never sees the padding after it, and the padded positions' states are dropped, so padding
   changes no loss or gradient;
3. computes the LM head and cross-entropy only where the shifted label is a reply token, in chunks,
   producing the gradient of the hidden states in the same pass (the logits are never kept).

The loss and the gradients are the stock step's, up to float rounding; tests/train/test_step.py
checks both against the model's own forward. It runs on the CPU backend, where Unsloth keeps the
stock transformers modules; on CUDA Unsloth's fused kernels run the stock step instead.
"""

from __future__ import annotations

from typing import Any

from train.dataset import IGNORE

# Rows of the LM head computed at once: 1024 x 49,152 fp32 logits for SmolLM2 are 192 MiB, small
# next to the model's activations; Llama 3's 128,256-token vocabulary makes them 0.5 GiB.
CHUNK_ROWS = 1024


def shared_prefix_length(input_ids: Any, labels: Any, attention_mask: Any) -> int:
    """Tokens every row starts with, stopped before any position whose prediction carries a label.

    The prediction at position p is scored against labels[p + 1], so the prefix ends at least one
    token before the first labelled position of any row: every scored prediction then comes from
    the per-row part. Rows are right-padded, so real tokens are the same in all rows only where
    every attention mask is 1.
    """
    import torch

    same = (input_ids == input_ids[:1]).all(0) & attention_mask.bool().all(0)
    common = int(torch.cumprod(same.int(), 0).sum())
    labelled = labels != IGNORE
    if not bool(labelled.any(1).all()):
        return 0  # a row without a label: nothing to anchor on, take the plain path
    first_label = int(labelled.int().argmax(1).min())
    return max(0, min(common, first_label - 1))


def decoder_and_head(model: Any) -> tuple[Any, Any] | None:
    """The causal LM's decoder stack and LM head, or None where this step would not be exact.

    Models that scale or soft-cap their logits, use sliding-window attention, or whose LM head has
    a bias or is trained, are left to the stock step, which knows those cases; so are runs with
    gradient checkpointing.
    """
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    get_decoder = getattr(base, "get_decoder", None)
    head = base.get_output_embeddings()
    if get_decoder is None or not isinstance(head, torch.nn.Linear) or head.bias is not None:
        return None
    if head.weight.requires_grad or getattr(base, "is_gradient_checkpointing", False):
        # A trained head needs its own gradient; recomputed layers would append to the cache again.
        return None
    if getattr(config, "final_logit_softcapping", None):
        return None
    if getattr(config, "logit_scale", None) not in (None, 1):
        return None
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return None  # a sliding-window cache may drop prefix positions the stock step attends to
    return get_decoder(), head


# Rows run together while padding stays under this share of a group's tokens. In bfloat16 on a
# CPU with AMX, one pass for all rows was the fastest even with random batches (the per-op cost of
# a small model's many small matrices dominates); in float32 the padded compute costs more, and
# with random batch lengths a single pass made the float32 step slower than one row at a time.
PAD_SLACK = 0.15


def row_groups(lengths: list[int], slack: float | None = None) -> list[list[int]]:
    """Row indices grouped longest first, each group padded by at most `slack` of its real tokens."""
    slack = PAD_SLACK if slack is None else slack
    groups: list[list[int]] = []
    for row in sorted(range(len(lengths)), key=lambda r: -lengths[r]):
        group = groups[-1] if groups else None
        if group is not None:
            real = sum(lengths[r] for r in group) + lengths[row]
            if (len(group) + 1) * lengths[group[0]] <= (1 + slack) * real:
                group.append(row)
                continue
        groups.append([row])
    return groups


def row_hidden_states(decoder: Any, input_ids: Any, lengths: list[int], prefix: int) -> list[Any]:
    """Each row's last hidden states after `prefix`, unpadded; the shared prefix runs once.

    Rows of similar length run as one batch (one pass through the layers instead of one per
    row), against the prefix's cached keys and values broadcast to each row, so every row's
    gradient reaches them. Positions past a row's length are padding; causal attention keeps
    them out of the real tokens' states, and they are cut off here.
    """
    import torch
    from transformers import DynamicCache

    cache = decoder(input_ids=input_ids[:1, :prefix], use_cache=True).past_key_values if prefix else None
    rest = [length - prefix for length in lengths]
    out: list[Any] = [None] * len(lengths)
    for group in row_groups(rest):
        width = prefix + rest[group[0]]
        ids = input_ids[group, prefix:width]
        if cache is None:
            states = decoder(input_ids=ids, use_cache=False).last_hidden_state
        else:
            n = len(group)
            shared = [(x.keys.expand(n, -1, -1, -1), x.values.expand(n, -1, -1, -1)) for x in cache.layers]
            positions = torch.arange(prefix, width, device=ids.device).unsqueeze(0).expand(n, -1)
            own = DynamicCache(ddp_cache_data=shared)
            hidden = decoder(input_ids=ids, position_ids=positions, past_key_values=own, use_cache=False)
            states = hidden.last_hidden_state
        for i, row in enumerate(group):
            out[row] = states[i, : rest[row]]
    return out


class LinearCrossEntropy:
    """sum_i scale_i * CE(hidden_i @ weight.T, target_i), with the gradient computed chunk by chunk.

    The weight is frozen (LoRA leaves the LM head alone), so the only gradient is the hidden
    states': (softmax - one_hot) @ weight, scaled. Computing it in the forward pass means no
    chunk of logits outlives its loop iteration.
    """

    @staticmethod
    def apply(hidden: Any, weight: Any, targets: Any, scale: Any) -> Any:
        import torch

        class _Fn(torch.autograd.Function):
            @staticmethod
            def forward(ctx, hidden, weight, targets, scale):
                total = hidden.new_zeros((), dtype=torch.float32)
                grad = torch.empty_like(hidden)
                for start in range(0, hidden.shape[0], CHUNK_ROWS):
                    end = start + CHUNK_ROWS
                    logits = (hidden[start:end] @ weight.T).float()
                    lse = logits.logsumexp(-1)
                    target = targets[start:end]
                    picked = logits.gather(1, target[:, None]).squeeze(1)
                    total += ((lse - picked) * scale[start:end]).sum()
                    probs = logits.sub_(lse[:, None]).exp_()
                    probs[torch.arange(len(target), device=probs.device), target] -= 1
                    probs.mul_(scale[start:end, None])
                    grad[start:end] = probs.to(weight.dtype) @ weight
                ctx.save_for_backward(grad)
                return total

            @staticmethod
            def backward(ctx, grad_output):
                (grad,) = ctx.saved_tensors
                return grad * grad_output.to(grad.dtype), None, None, None

        return _Fn.apply(hidden, weight, targets, scale)


def shared_prefix_loss(
    decoder: Any, head: Any, inputs: dict[str, Any], row_weights: Any, denominator: Any
) -> tuple[Any, int]:
    """(sum of row-weighted token losses / denominator, labelled tokens); denominator None means their count.

    The caller picks the denominator exactly as the stock Trainer would: the accumulation-wide
    label count when it hands one over, else this batch's own count.
    """
    import torch

    input_ids, labels = inputs["input_ids"], inputs["labels"]
    mask = inputs.get("attention_mask")
    if mask is None:
        mask = torch.ones_like(input_ids)
    lengths = mask.sum(1)
    if not bool((mask.cumprod(1).sum(1) == lengths).all()):
        raise ValueError("the shared-prefix step needs right-padded rows (padding_side='right')")
    lengths = lengths.tolist()
    prefix = shared_prefix_length(input_ids, labels, mask)
    rows = row_hidden_states(decoder, input_ids, lengths, prefix)
    if row_weights is None:
        row_weights = torch.ones(len(rows))
    hidden, targets, scales = [], [], []
    for row, (states, length, weight) in enumerate(zip(rows, lengths, row_weights.tolist(), strict=True)):
        # The prediction at position p is scored against the label at p + 1; the last has none.
        target = torch.full((length - prefix,), IGNORE, dtype=labels.dtype, device=labels.device)
        target[:-1] = labels[row, prefix + 1 : length]
        keep = target != IGNORE
        hidden.append(states[keep])
        targets.append(target[keep])
        scales.append(torch.full((int(keep.sum()),), float(weight), device=states.device))
    count = sum(len(t) for t in targets)
    scale = torch.cat(scales) / (count if denominator is None else denominator)
    loss = LinearCrossEntropy.apply(torch.cat(hidden), head.weight, torch.cat(targets), scale)
    return loss, count
