"""The training loss: cross-entropy on the counted targets, RWKV-LM's L2Wrap, and the two ways a run
stops because training went wrong (NonFiniteLoss, NothingToLearn)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class NonFiniteLoss(RuntimeError):
    """The loss, or the loss of the weights about to be saved, is NaN or infinite."""


class NothingToLearn(RuntimeError):
    """Every trainable parameter got an exactly zero gradient: training cannot change the model."""


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """logits (B, T, V), targets (B, T), mask (B, T) -> the mean loss over the masked-in targets."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))       # bf16 logits: the loss in fp32
    losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")   # (B*T,)
    mask = mask.flatten().to(losses.dtype)
    return (losses * mask).sum() / mask.sum().clamp_min(1.0)


class L2Wrap(torch.autograd.Function):
    """RWKV-LM's L2Wrap: the loss passes through; in the backward, the largest logit of every
    position gets an extra gradient 1e-4 / (B*T) * its value, pushing logits towards 0."""

    @staticmethod
    def forward(ctx, loss, logits):
        ctx.save_for_backward(logits)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        (logits,) = ctx.saved_tensors
        factor = 1e-4 / (logits.shape[0] * logits.shape[1])
        top, ids = torch.max(logits, -1, keepdim=True)
        grad_logits = torch.zeros_like(logits).scatter_(-1, ids, top * factor * grad_output)
        return grad_output, grad_logits
