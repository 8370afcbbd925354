"""infctx: a long sample's loss computed in chunks, exactly, with the memory of one chunk.

    loss = sample_loss(model, x, y, mask, l2wrap=True, chunk_ctx=4096)    # x: (B, 131072)
    parts = run_chunks(model, x, 4096, output, y)     # any per-chunk result: src/align/logprobs.py's log-probabilities

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

from typing import Callable

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


def _chunk(model, x, output: Callable, start: int, draw: DropoutDraw | None, head_chunk: int, n_per_token: int,
           *rest: torch.Tensor):
    """One chunk, its first token at position `start` of the sample, from the state it starts with:
    (output(model's output, the chunk's per-token tensors), the state it ends with, flat). The dropout offset
    is set here, inside the checkpoint, so the backward's recompute of this chunk draws its masks again."""
    per_token, state_tensors = rest[:n_per_token], rest[n_per_token:]
    if draw is not None:
        draw.offset = start
    state = RWKVState.from_tensors(state_tensors, model.config.family) if state_tensors else None
    out, state = model(x, state=state, return_state=True, head=not head_chunk)   # (B, t, V), or (B, t, C)
    return (output(out, *per_token), *state.tensors())


def run_chunks(model: torch.nn.Module, x: torch.Tensor, chunk_ctx: int, output: Callable, *per_token: torch.Tensor,
               draw: DropoutDraw | None = None, head_chunk: int = 0) -> list[torch.Tensor]:
    """x (B, T) in chunks of `chunk_ctx` tokens (0 or >= T: one piece), each from the state the one before
    ended with and, when a backward will follow, under activation checkpointing: the list of each chunk's
    `output(out, *its slices of per_token)`, where `out` is the model's logits (B, t, V), or with `head_chunk`
    the head's input (B, t, C), and `per_token` are (B, T, ...) tensors cut as x is. What each chunk hands
    out (its loss, its log-probabilities) and its final state are all the forward keeps; the backward
    recomputes one chunk at a time and each starting state's gradient flows into the chunk before it."""
    T = x.shape[1]
    if not chunk_ctx or chunk_ctx >= T:
        if draw is not None:
            draw.offset = 0
        return [output(model(x, head=not head_chunk), *per_token)]
    recompute = torch.is_grad_enabled()              # without a backward (evaluation) there is nothing to keep
    results, state = [], ()
    for start in range(0, T, chunk_ctx):
        piece = slice(start, start + chunk_ctx)
        args = (model, x[:, piece], output, start, draw, head_chunk, len(per_token), *(t[:, piece] for t in per_token),
                *state)
        if recompute:
            result, *state = torch.utils.checkpoint.checkpoint(_chunk, *args, use_reentrant=False)
        else:
            result, *state = _chunk(*args)
        results.append(result)
    return results


def sample_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, l2wrap: bool = True,
                chunk_ctx: int = 0, draw: DropoutDraw | None = None, head_chunk: int = 0) -> torch.Tensor:
    """x, y, mask: (B, T) -> the batch's mean loss over the masked-in targets (see the module
    docstring); `chunk_ctx` 0 or >= T: in one piece. `draw`: the DropoutDraw attached to the model's
    LoRA layers, told each piece's offset so that chunks draw the whole sample's dropout masks.
    `head_chunk`: the head and the loss over at most this many tokens at a time (head_loss.py)."""
    B, T = x.shape
    if not chunk_ctx or chunk_ctx >= T:
        count, positions = None, None                # the loss's own mean
    else:
        count, positions = mask.to(torch.float32).sum().clamp_min(1.0), B * T     # each chunk: its share

    def chunk_loss(out, y, mask):
        return loss_of(model, out, y, mask, l2wrap, count, positions, head_chunk)

    parts = run_chunks(model, x, chunk_ctx, chunk_loss, y, mask, draw=draw, head_chunk=head_chunk)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total
