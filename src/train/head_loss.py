"""The head and the loss a chunk of tokens at a time (--head_chunk), so the full logits never exist.

The (B, T, V) logits and their gradient are the largest tensors of a training step: at ctx 4096
with the 65536-token World vocabulary, 1 GiB each per sample in fp32, and the loss keeps its fp32
log-probabilities for the backward besides. With `head_chunk` N, the model stops before its head
(`model(idx, head=False)`: the (B, T, C) features after ln_out) and this module runs

    for each run of N tokens of the flattened (B*T) batch:
        loss += training_loss(head(features[chunk]), targets[chunk], mask[chunk],
                              count=<the whole batch's>, positions=<the whole batch's B*T>)

each chunk under activation checkpointing: the forward keeps only the features, the backward
recomputes one chunk's logits at a time and turns them into that chunk's share of the head's and
the features' gradients. Peak memory for the head is one chunk's (N, V) logits, log-probabilities
and gradient, whatever T is. Every chunk's share uses the whole batch's count of counted targets
and L2Wrap's whole-batch scale (loss.training_loss), so the chunks add up to the unchunked loss and
gradients exactly, up to the order of the sums. The cost: the head's matmul runs once more per step.

Evaluation (eval.py, --val_data) chunks the head the same way without a backward
(src/infer/evaluate.py).
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint

from .loss import training_loss


def _chunk_loss(head: torch.nn.Module, features: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                l2wrap: bool, count: torch.Tensor, positions: int) -> torch.Tensor:
    """(n, C) features of n tokens -> their share of the loss."""
    return training_loss(head(features)[None], targets[None], mask[None], l2wrap, count=count, positions=positions)


def head_loss(head: torch.nn.Module, features: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
              l2wrap: bool = True, count: torch.Tensor | None = None, positions: int | None = None,
              head_chunk: int = 0) -> torch.Tensor:
    """features (B, T, C) (the head's input), targets (B, T), mask (B, T) -> training_loss(head(features),
    ...) with the logits of at most `head_chunk` tokens at a time (0, or at least B*T: all at once).
    `count` and `positions`: those of the whole sample when this is a piece of it (infctx.py)."""
    B, T, C = features.shape
    if not head_chunk or head_chunk >= B * T:
        return training_loss(head(features), targets, mask, l2wrap, count=count, positions=positions)
    count = mask.to(torch.float32).sum().clamp_min(1.0) if count is None else count
    positions = positions or B * T
    flat, flat_targets, flat_mask = features.reshape(B * T, C), targets.reshape(B * T), mask.reshape(B * T)
    recompute = torch.is_grad_enabled()              # without a backward there is nothing to keep
    total = None
    for start in range(0, B * T, head_chunk):
        piece = slice(start, start + head_chunk)
        args = (head, flat[piece], flat_targets[piece], flat_mask[piece], l2wrap, count, positions)
        if recompute:
            part = torch.utils.checkpoint.checkpoint(_chunk_loss, *args, use_reentrant=False)
        else:
            part = _chunk_loss(*args)
        total = part if total is None else total + part
    return total
