"""infctx: a long sample's loss computed in chunks, exactly, with the memory of one chunk.

    loss = sample_loss(model, x, y, mask, l2wrap=True, chunk_ctx=4096)    # x: (B, 131072)

Without `chunk_ctx` the model runs over the whole sample at once: the activations of every
token and the (B, T, V) logits are held for the backward. With it, the sample runs as chunks
of `chunk_ctx` tokens, each chunk starting from the state the previous one ended with
(src/model/state.py). Every chunk runs under activation checkpointing with its part of the
loss computed inside the checkpoint, so the forward keeps only each chunk's inputs: its
tokens and the state it started from (per layer two (B, C) token shifts and a (B, H, N, N)
WKV state). The backward recomputes one chunk at a time, last to first, and the gradient of
each chunk's starting state flows into the chunk before it: backpropagation covers the
whole sample, not just the current chunk, unlike training with detached states.

The loss is the mean over every counted token of the whole sample (masks respected): each
chunk adds (sum of its counted losses) / (the sample's count), so the chunks sum to the
unchunked loss, and L2Wrap's scale is the whole sample's (loss.training_loss). LoRA's dropout
masks are keyed by token position (peft/lora.py DropoutDraw): each chunk draws the whole sample's.
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint

from ..model import RWKVState
from ..peft.lora import DropoutDraw
from .head_loss import head_loss
from .loss import training_loss


def loss_of(model, out: torch.Tensor, y, mask, l2wrap: bool, count, positions, head_chunk: int) -> torch.Tensor:
    """The loss from the model's output: its logits, or with `head_chunk` the head's input, the head then
    applied a chunk of tokens at a time (head_loss.py)."""
    if head_chunk:
        return head_loss(model.head, out, y, mask, l2wrap, count=count, positions=positions, head_chunk=head_chunk)
    return training_loss(out, y, mask, l2wrap, count=count, positions=positions)


def _chunk_loss(model, x, y, mask, l2wrap: bool, count: torch.Tensor, positions: int, start: int,
                draw: DropoutDraw | None, head_chunk: int, *state_tensors):
    """One chunk, its first token at position `start` of the sample: (its share of the loss, the state it
    ends with, flat). The dropout offset is set here, inside the checkpoint, so the backward's recompute
    of this chunk draws this chunk's masks again."""
    if draw is not None:
        draw.offset = start
    state = RWKVState.from_tensors(state_tensors, model.config.family) if state_tensors else None
    out, state = model(x, state=state, return_state=True, head=not head_chunk)   # (B, t, V), or (B, t, C)
    part = loss_of(model, out, y, mask, l2wrap, count, positions, head_chunk)
    return (part, *state.tensors())


def sample_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, l2wrap: bool = True,
                chunk_ctx: int = 0, draw: DropoutDraw | None = None, head_chunk: int = 0) -> torch.Tensor:
    """x, y, mask: (B, T) -> the batch's mean loss over the masked-in targets (see the module
    docstring); `chunk_ctx` 0 or >= T: in one piece. `draw`: the DropoutDraw attached to the model's
    LoRA layers, told each piece's offset so that chunks draw the whole sample's dropout masks.
    `head_chunk`: the head and the loss over at most this many tokens at a time (head_loss.py)."""
    B, T = x.shape
    if not chunk_ctx or chunk_ctx >= T:
        if draw is not None:
            draw.offset = 0
        return loss_of(model, model(x, head=not head_chunk), y, mask, l2wrap, None, None, head_chunk)
    count = mask.to(torch.float32).sum().clamp_min(1.0)
    recompute = torch.is_grad_enabled()              # without a backward (evaluation) there is nothing to keep
    total, state = None, ()
    for start in range(0, T, chunk_ctx):
        piece = slice(start, start + chunk_ctx)
        args = (model, x[:, piece], y[:, piece], mask[:, piece], l2wrap, count, B * T, start, draw, head_chunk, *state)
        if recompute:
            part, *state = torch.utils.checkpoint.checkpoint(_chunk_loss, *args, use_reentrant=False)
        else:
            part, *state = _chunk_loss(*args)
        total = part if total is None else total + part
    return total
