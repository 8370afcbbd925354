"""Group sampling for GRPO: G completions of each of P prompts, the prompt read once.

    rollouts = sample_groups(model, prompts, group_size=8, max_new_tokens=256, seeds=list(range(P * 8)))
    x, y, mask = rollouts.padded(prompts)        # (P*G, T) each: inputs, targets, 1 on completion targets

RWKV is an RNN, so a prompt's whole meaning for what follows is its final state. Each prompt is read
once, in one parallel pass of its own (1, T_p); its state and last logits are copied to the G rows
of its group; then all P*G rows are decoded together in RNN mode, one (B, 1) forward per step.
Rows that end at a stop token leave the batch (their state rows are dropped), so a step costs what
the rows still running need.

Row i = p * G + g (prompt p's g-th completion) draws with its own Sampler(seed=seeds[i]) on its own
logits, so a row's tokens are those `generate_tokens(model, prompts[p], Sampler(seed=seeds[i]), ...)`
gives alone: reproducible, and independent of how rows are batched (up to the last bits of a batched
matmul, which float64 shows to be nothing). Reading each prompt on its own keeps that exact for the
first token too, and keeps the prompt pass's (T_p, vocab) logits to one prompt at a time.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from ..infer.sampling import Sampler
from ..model.state import RWKVState


@dataclass
class Rollouts:
    """What sample_groups drew. Row i = p * G + g is prompt p's g-th completion."""

    prompt_lengths: list[int]          # P: tokens of each prompt
    completions: list[list[int]]       # P*G: the sampled tokens, the stop token included when a row stopped
    stopped: list[bool]                # P*G: ended at a stop token (else at max_new_tokens)

    @property
    def group_size(self) -> int:
        return len(self.completions) // max(len(self.prompt_lengths), 1)

    def padded(self, prompts: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (P*G, T), y (P*G, T), mask (P*G, T) for training: row i's sequence is prompt + completion,
        x = sequence[:-1], y = sequence[1:], padded on the right to the longest row with `pad`; mask
        (float32) is 1 exactly where y is a completion token (the stop token included), 0 on the prompt's
        own targets and on padding. x and y are int64 on the CPU."""
        if [len(p) for p in prompts] != self.prompt_lengths:
            raise ValueError(f"Rollouts.padded: the prompts' lengths {[len(p) for p in prompts]} are not those "
                             f"sampled from, {self.prompt_lengths}")
        G = self.group_size
        rows = [list(prompts[i // G]) + completion for i, completion in enumerate(self.completions)]
        T = max(len(r) for r in rows) - 1
        x = torch.full((len(rows), T), pad, dtype=torch.long)
        y = torch.full((len(rows), T), pad, dtype=torch.long)
        mask = torch.zeros(len(rows), T)
        for i, row in enumerate(rows):
            n = len(row) - 1                                        # targets of this row
            x[i, :n] = torch.tensor(row[:-1])
            y[i, :n] = torch.tensor(row[1:])
            mask[i, self.prompt_lengths[i // G] - 1:n] = 1          # y[j] = row[j + 1] is a completion token
        return x, y, mask


def concat_states(states: list[RWKVState]) -> RWKVState:
    """States of one family and shape, stacked along the batch: rows of states[0], then states[1], ..."""
    families = {s.family for s in states}
    if len(families) != 1:
        raise ValueError(f"concat_states: the states are of several model families: {sorted(families)}")
    layers = zip(*(s.tensors() for s in states))                   # per tensor slot: one (B_k, ...) per state
    return RWKVState.from_tensors((torch.cat(ts, dim=0) for ts in layers), states[0].family)


def select_rows(state: RWKVState, rows: torch.Tensor) -> RWKVState:
    """The state's batch rows `rows` (a 1-D index tensor), in that order."""
    return RWKVState.from_tensors((t.index_select(0, rows.to(t.device)) for t in state.tensors()), state.family)


def check_arguments(model, prompts, group_size, max_new_tokens, seeds, stop_tokens, state) -> None:
    """One clear line for anything sample_groups cannot take."""
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError("sample_groups: prompts must be a non-empty list of token lists")
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    for p, prompt in enumerate(prompts):
        if not isinstance(prompt, (list, tuple)) or not prompt:
            raise ValueError(f"sample_groups: prompt {p} holds no tokens")
        bad = [t for t in prompt if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0
               or (vocab is not None and t >= vocab)]
        if bad:
            raise ValueError(f"sample_groups: prompt {p} holds {bad[0]!r}, not a token id"
                             + (f" in [0, {vocab})" if vocab is not None else ""))
    for name, value in (("group_size", group_size), ("max_new_tokens", max_new_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"sample_groups: {name} must be a whole number >= 1, got {value!r}")
    rows = len(prompts) * group_size
    if seeds is not None and len(seeds) != rows:
        raise ValueError(f"sample_groups: seeds must hold one seed per completion, {len(prompts)} prompts x "
                         f"{group_size} = {rows}, got {len(seeds)}")
    if any(isinstance(t, bool) or not isinstance(t, numbers.Integral) for t in stop_tokens):
        raise ValueError(f"sample_groups: stop_tokens must be token ids, got {tuple(stop_tokens)!r}")
    if state is not None and (not isinstance(state, RWKVState) or state.batch_size not in (1, len(prompts))):
        got = f"batch size {state.batch_size}" if isinstance(state, RWKVState) else type(state).__name__
        raise ValueError(f"sample_groups: state must be an RWKVState of batch size 1 (every prompt) or "
                         f"{len(prompts)} (one per prompt), got {got}")


@torch.no_grad()
def sample_groups(model, prompts: list[list[int]], group_size: int, max_new_tokens: int, temperature: float = 1.0,
                  top_p: float = 1.0, top_k: int = 0, seeds: list[int] | None = None,
                  stop_tokens: tuple[int, ...] = (0,), state: RWKVState | None = None) -> Rollouts:
    """`group_size` completions of up to `max_new_tokens` tokens after each prompt, sampled with
    temperature / top_p / top_k (src/infer/sampling.py). `seeds`: one per completion row (P*G), row
    i = p * G + g; None: fresh seeds. A row ends after a token of `stop_tokens` (kept in its
    completion) or after max_new_tokens. `state`: where every prompt starts (batch 1), or each its own
    (batch P); None: the model's own start (zeros, or a tuned state). The model runs in eval mode and
    gets each module's mode back afterwards."""
    stop_tokens = tuple(stop_tokens)
    check_arguments(model, prompts, group_size, max_new_tokens, seeds, stop_tokens, state)
    P, G = len(prompts), group_size
    samplers = [Sampler(temperature, top_p, top_k, None if seeds is None else seeds[i]) for i in range(P * G)]
    stops = {int(t) for t in stop_tokens}
    device = next(model.parameters()).device
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        # each prompt once: its last logits and final state, copied to the G rows of its group
        last_logits, group_states = [], []
        for p, prompt in enumerate(prompts):
            start = state if state is None or state.batch_size == 1 else select_rows(state, torch.tensor([p]))
            logits, prompt_state = model(torch.tensor([[int(t) for t in prompt]], device=device), state=start,
                                         return_state=True)                           # (1, T_p, V)
            last_logits.append(logits[0, -1].clone())                                # (V,), not the (T_p, V)
            group_states.append(prompt_state.expand(G))
        logits = torch.stack(last_logits).repeat_interleave(G, dim=0)                 # (P*G, V)
        batch = concat_states(group_states)                                           # P*G rows

        completions: list[list[int]] = [[] for _ in range(P * G)]
        stopped = [False] * (P * G)
        running = list(range(P * G))                 # batch row b decodes completion row running[b]
        for step in range(max_new_tokens):
            on_cpu = logits.float().cpu()            # (B, V): one transfer; Sampler reads fp32 on the CPU
            tokens = [samplers[i](on_cpu[b]) for b, i in enumerate(running)]
            for i, token in zip(running, tokens):
                completions[i].append(token)
                stopped[i] = token in stops
            keep = [b for b, i in enumerate(running) if not stopped[i]]
            if step == max_new_tokens - 1 or not keep:
                break                                # the last tokens need not be read
            if len(keep) < len(running):             # finished rows leave the batch
                batch = select_rows(batch, torch.tensor(keep))
                running, tokens = [running[b] for b in keep], [tokens[b] for b in keep]
            logits, batch = model(torch.tensor(tokens, device=device)[:, None], state=batch,
                                  return_state=True)                                 # (B, 1, V)
            logits = logits[:, -1]                                                   # (B, V)
    finally:
        for module, training in modes:
            module.training = training
    return Rollouts([len(p) for p in prompts], completions, stopped)
