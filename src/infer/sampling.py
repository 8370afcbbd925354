"""Choosing the next token from logits: greedy, or sampled with temperature, top-k and top-p.

    sampler = Sampler(temperature=1.0, top_p=0.85, top_k=0, seed=42)
    token = sampler(logits)                  # logits: (V,) of the last position

The filters act on the probabilities p = softmax(logits), in ChatRWKV's order: top-k keeps the
k most probable tokens (0: all), top-p keeps the smallest set of most probable tokens whose
probability reaches top_p (1: all), then temperature T reshapes what is left, p ** (1 / T),
and the result is renormalised and sampled. T = 0 takes the most probable token (greedy). The
reshaping is done on the logits, softmax(logits / T) over the kept tokens (the same distribution),
so a temperature near 0 cannot underflow every probability to zero. Logits that are not finite
(a damaged model or state) are an error, not a draw.
Draws come from the sampler's own torch.Generator: with a seed, the same logits give the same
tokens in any process, whatever else uses the global RNG.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Sampler:
    temperature: float = 1.0
    top_p: float = 0.85
    top_k: int = 0
    seed: int | None = None
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.temperature >= 0 and self.temperature < float("inf")):
            raise ValueError(f"--temperature must be a finite number >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"--top_p must be in (0, 1], got {self.top_p}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"--top_k must be a whole number >= 0, got {self.top_k}")
        self.generator = torch.Generator()
        if self.seed is not None:
            if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**64:
                raise ValueError(f"--seed must be a whole number in [0, 2^64), got {self.seed}")
            self.generator.manual_seed(self.seed)
        else:
            self.generator.seed()

    def __call__(self, logits: torch.Tensor) -> int:
        """logits (V,) -> a token id."""
        logits = logits.detach().float().cpu()
        if not torch.isfinite(logits).all():
            raise ValueError(f"the model's logits hold {int((~torch.isfinite(logits)).sum())} values that are NaN or "
                             f"infinite (a damaged model, adapter or state): nothing to sample from")
        if self.temperature == 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits, dim=-1)
        if self.top_k and self.top_k < probs.numel():
            kth = torch.topk(probs, self.top_k).values[-1]
            probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
        if self.top_p < 1:
            ordered = torch.sort(probs, descending=True).values
            reach = int(torch.searchsorted(torch.cumsum(ordered, 0), torch.tensor(self.top_p * float(ordered.sum()))))
            cutoff = ordered[min(reach, ordered.numel() - 1)]
            probs = torch.where(probs >= cutoff, probs, torch.zeros_like(probs))
        kept = probs > 0
        weights = torch.zeros_like(probs)
        weights[kept] = torch.softmax(logits[kept] / self.temperature, dim=-1)   # p ** (1 / T), renormalised
        return int(torch.multinomial(weights, 1, generator=self.generator))
