"""The log-probability the model gives each target token, exact over long samples with the memory of a chunk.

    logp = token_logprobs(model, x, y)                          # (B, T): log p(y_t | x_<=t)
    logp = token_logprobs(model, x, y, chunk_ctx=4096, head_chunk=1024)

Preference and reward tuning need the log-probabilities of the response tokens one by one (GRPO's ratio
and KL are per token) or summed per sample (DPO), before a nonlinear function of them: unlike the
supervised loss, they cannot be summed into one number inside each chunk. The (B, T) log-probabilities
themselves are small, so they are what each piece hands out:

    chunk_ctx (infctx, src/train/infctx.py run_chunks): the sample runs as chunks of chunk_ctx tokens, each
              starting from the state the previous one ended with and run under activation
              checkpointing; a chunk's outputs are its (B, t) log-probabilities and its final state,
              so the backward recomputes one chunk at a time and the gradient of each chunk's starting
              state flows into the chunk before it: exact gradients over the whole sample.
    head_chunk (as src/train/head_loss.py): the head and the log-softmax over at most head_chunk tokens
              (B x t) at a time, each piece checkpointed: the (B, T, V) logits never exist whole.

`temperature` divides the logits before the softmax (GRPO scores its samples under the distribution it
sampled them from). The log-softmax runs in fp32 (float64 stays float64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from ..peft.lora import DropoutDraw
from ..train.infctx import run_chunks


def logprobs_of(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """logits (B, t, V), targets (B, t) -> log softmax(logits / temperature)[targets]: (B, t), fp32 or wider."""
    wide = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if temperature != 1.0:
        wide = wide / temperature
    return F.log_softmax(wide, dim=-1).gather(-1, targets[..., None]).squeeze(-1)


def _head_piece(head: torch.nn.Module, features: torch.Tensor, targets: torch.Tensor, temperature: float):
    return logprobs_of(head(features), targets, temperature)


def head_logprobs(head: torch.nn.Module, features: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                  head_chunk: int = 0) -> torch.Tensor:
    """features (B, t, C) (the head's input), targets (B, t) -> (B, t) log-probabilities, the head applied to at
    most `head_chunk` tokens (counted over the batch: B x a run of positions) at a time."""
    B, T, _ = features.shape
    if not head_chunk or head_chunk >= B * T:
        return logprobs_of(head(features), targets, temperature)
    step = max(1, head_chunk // B)                  # positions per piece
    recompute = torch.is_grad_enabled()
    pieces = []
    for start in range(0, T, step):
        args = (head, features[:, start:start + step], targets[:, start:start + step], temperature)
        pieces.append(torch.utils.checkpoint.checkpoint(_head_piece, *args, use_reentrant=False) if recompute
                      else _head_piece(*args))
    return torch.cat(pieces, dim=1)


def token_logprobs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, chunk_ctx: int = 0, head_chunk: int = 0,
                   temperature: float = 1.0, draw: DropoutDraw | None = None) -> torch.Tensor:
    """x, y (B, T) -> (B, T): log p(y_t | x_0..x_t) under `model` (see the module docstring). `draw`: the
    DropoutDraw of the model's LoRA layers (the whole sample's masks in every chunk)."""
    def chunk_logprobs(out, y):
        if head_chunk:
            return head_logprobs(model.head, out, y, temperature, head_chunk)
        return logprobs_of(out, y, temperature)

    return torch.cat(run_chunks(model, x, chunk_ctx, chunk_logprobs, y, draw=draw, head_chunk=head_chunk), dim=1)


def sequence_logprobs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
                      chunk_ctx: int = 0, head_chunk: int = 0, draw: DropoutDraw | None = None) -> torch.Tensor:
    """x, y, mask (B, T) -> (B,): the sum of log p(y_t) over the masked-in targets of each sample (the
    log-probability of its response)."""
    logp = token_logprobs(model, x, y, chunk_ctx, head_chunk, draw=draw)
    return (logp * mask.to(logp.dtype)).sum(dim=1)
