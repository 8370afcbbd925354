"""The training loss: cross-entropy on the counted targets, RWKV-LM's L2Wrap, and the two ways a run
stops because training went wrong (NonFiniteLoss, NothingToLearn).

`training_loss` is both in one autograd function: the backward writes softmax - onehot into one
(B, T, V) buffer and adds L2Wrap's B*T terms into it in place, where the composition of
F.cross_entropy and L2Wrap would make a second (B, T, V) tensor for L2Wrap and add the two.
`masked_cross_entropy` and `L2Wrap` are the reference it is tested against.
"""

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


L2WRAP_FACTOR = 1e-4          # RWKV-LM: the largest logit of each position gets 1e-4 / (B*T) * its value


class TrainingLoss(torch.autograd.Function):
    """Masked mean cross-entropy (and, with l2wrap, RWKV-LM's L2Wrap) with a fused backward. Keeps
    the fp32 log-probabilities for the backward, as F.cross_entropy does."""

    @staticmethod
    def forward(ctx, logits, targets, mask, l2wrap, count=None, positions=None):
        wide = logits.to(torch.promote_types(logits.dtype, torch.float32))            # (B, T, V)
        logp = F.log_softmax(wide, dim=-1)                                               # (B, T, V)
        losses = -logp.gather(-1, targets[..., None]).squeeze(-1)                       # (B, T)
        weights = mask.to(losses.dtype)
        count = weights.sum().clamp_min(1.0) if count is None else count.to(losses.dtype)
        ctx.positions = positions or logits.shape[0] * logits.shape[1]
        top = ids = None
        if l2wrap:                                     # each position's largest logit: (B, T, 1) each
            top, ids = torch.max(wide, -1, keepdim=True)
        ctx.save_for_backward(logp, targets, weights, count, top, ids)
        ctx.logits_dtype = logits.dtype
        return (losses * weights).sum() / count

    @staticmethod
    def backward(ctx, grad_output):
        logp, targets, weights, count, top, ids = ctx.saved_tensors
        grad = torch.exp(logp)                                                           # softmax
        grad.scatter_add_(-1, targets[..., None], -torch.ones_like(weights)[..., None])  # - onehot(target)
        grad.mul_((weights * (grad_output / count))[..., None])
        if top is not None:
            factor = L2WRAP_FACTOR / ctx.positions
            grad.scatter_add_(-1, ids, top * (factor * grad_output))
        return grad.to(ctx.logits_dtype), None, None, None, None, None


def training_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, l2wrap: bool = True,
                  count: torch.Tensor | None = None, positions: int | None = None) -> torch.Tensor:
    """logits (B, T, V), targets (B, T), mask (B, T) -> the mean loss over the masked-in targets, whose
    backward also applies L2Wrap when `l2wrap`.

    A piece of a longer sample (infctx.py) passes the whole sample's `count` of masked-in targets and
    its `positions` (B * T): the pieces' results then add up to the whole sample's loss, and L2Wrap's
    1e-4 / (B*T) is the whole sample's."""
    return TrainingLoss.apply(logits, targets, mask, l2wrap, count, positions)


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
        factor = L2WRAP_FACTOR / (logits.shape[0] * logits.shape[1])
        top, ids = torch.max(logits, -1, keepdim=True)
        grad_logits = torch.zeros_like(logits).scatter_(-1, ids, top * factor * grad_output)
        return grad_output, grad_logits
