"""The head and the loss: the largest tensors of a step, traced from the training code on the meta device.

    head = HeadModel(config, torch.bfloat16)
    head.peak(tokens=4096, head_chunk=0)      # (B*T, V) logits, fp32 log-probabilities, their gradient, ...

What runs is the trainer's own code, src/train/head_loss.py `head_loss` (the head's matmul and
src/train/loss.py's fused TrainingLoss), forward and backward, on the meta device under
trace.Holdings: the component is the most bytes alive at once that the head and loss made (the
features it starts from are the activations'). Unchunked that is, per token, the logits in the
model dtype, fp32 log-probabilities kept for the backward, the fp32 softmax - onehot gradient and
its cast back to the model dtype, and the features' gradient; with `head_chunk` N the (N, V) ones
exist for one chunk at a time, beside (B*T, C) gradients of the features (each chunk's slice gradient
is a full-size tensor before autograd adds them up). Unchunked, two traces (16 and 32 tokens) fix the
affine function of the number of tokens; chunked, up to 16 chunks are traced as they are, and beyond
that the larger of two lines: the affine function through 8 and 16 chunks (while one chunk's (N, V)
tensors dominate), and the full-size feature gradients alone, their slope traced with a vocabulary of
16 (where the (N, V) tensors vanish), which take over for very long samples.
"""

from __future__ import annotations

import torch

from ..train.head_loss import head_loss
from .trace import Holdings


class HeadModel:
    """The head/loss bytes of one model width, vocabulary and dtype."""

    def __init__(self, config, dtype: torch.dtype) -> None:
        self.config, self.dtype = config, dtype
        self.fits: dict[int, tuple[float, float]] = {}
        self.exact: dict[tuple[int, int], int] = {}

    def trace(self, tokens: int, head_chunk: int, vocab: int | None = None) -> int:
        """The peak bytes made by the head and the loss over `tokens` tokens (one row), forward and backward
        (`vocab`: another vocabulary size than the model's)."""
        C, V = self.config.n_embd, vocab or self.config.vocab_size
        with torch.device("meta"):
            head = torch.nn.Linear(C, V, bias=False, dtype=self.dtype).requires_grad_(False)
            features = torch.empty(1, tokens, C, dtype=self.dtype, requires_grad=True)
            targets = torch.zeros(1, tokens, dtype=torch.long)
            mask = torch.ones(1, tokens)
        with Holdings() as held:
            loss = head_loss(head, features, targets, mask, True, head_chunk=head_chunk)
            loss.backward()
        return held.peak_bytes()

    def peak(self, tokens: int, head_chunk: int = 0) -> int:
        """The head/loss component for `tokens` (= micro_bsz x the tokens one forward sees) tokens."""
        chunk = head_chunk if head_chunk and head_chunk < tokens else 0
        if chunk and tokens <= 16 * chunk:
            if (tokens, chunk) not in self.exact:
                self.exact[tokens, chunk] = self.trace(tokens, chunk)
            return self.exact[tokens, chunk]
        if chunk not in self.fits:
            low = 8 * chunk if chunk else 16
            a, b = self.trace(low, chunk), self.trace(2 * low, chunk)
            slope = (b - a) / low
            self.fits[chunk] = (a - slope * low, slope)
            if chunk:
                self.fits[-chunk] = (0.0, (self.trace(2 * low, chunk, vocab=16) - self.trace(low, chunk, vocab=16)) / low)
        fixed, per_token = self.fits[chunk]
        line = fixed + per_token * tokens
        if chunk:
            line = max(line, self.fits[-chunk][1] * tokens)
        return int(round(line))
