"""What every RWKV generation shares around its blocks: embedding, the stack of blocks with its
state and activation checkpointing, the output head, checks on the inputs, runtime options.

    x = emb(idx)                                   # (B, T, C)
    for each block: x, carry, layer state = block(x, *carry, config, *layer state)
    logits = head(ln_out(x))                       # (B, T, V)

`carry` is what one block hands the next within a step: nothing in RWKV-6, layer 0's values
("v_first") in RWKV-7. The layer state is RWKVState's three tensors (state.py). The pieces the
families' time and channel mixes share (the token shift, the GroupNorm epsilon) live here too.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from .state import RWKVState

LN_X_EPS = 64e-5        # RWKV-LM: 1e-5 * head_size_divisor ** 2, head_size_divisor = 8


def time_shift(x: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, C) -> x_{t-1}: the previous token's features; at t = 0 `previous` (B, C), the last
    token of the piece before (RWKVState's token shift), or zeros."""
    if previous is None:
        return F.pad(x, (0, 0, 1, -1))
    return torch.cat([previous[:, None].to(x.dtype), x[:, :-1]], dim=1)



class RWKVBlock(nn.Module):
    """ln1, ln2 (and ln0 in layer 0, applied to the embeddings), a time mix and a channel mix, registered
    in RWKV-LM's order; each generation's Block gives its forward."""

    def __init__(self, config, layer_id: int, time_mix, channel_mix):
        super().__init__()
        self.layer_id = layer_id
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(config.n_embd)
        self.att = time_mix(config, layer_id)
        self.ffn = channel_mix(config, layer_id)


class RWKVModel(nn.Module):
    """model(idx: LongTensor (B, T)) -> logits (B, T, V).

    model(idx, state=None, return_state=True) -> (logits, RWKVState): `state` (state.py) is
    where the sequence starts (None: the beginning; or a tuned `time_state`, see state tuning),
    and the returned state is where it ends, so a sequence fed in pieces, each from the state
    the last returned, gives the logits of feeding it whole. The returned state carries the
    autograd graph: gradients flow back across pieces (infctx training) unless it is detached.

    model(idx, head=False) -> the head's input (B, T, C) (after ln_out) in place of the logits, for a
    caller that applies `model.head` itself, a chunk of tokens at a time (src/train/head_loss.py).

    `self.config` is the model's only configuration: the blocks read its runtime options from the
    forward call, so `set_runtime` changes them for this model alone."""

    carry_size = 0                          # tensors a block hands the next within a step

    def __init__(self, config, block_class):
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(block_class(config, i) for i in range(config.n_layer))
        self.ln_out = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor, state: RWKVState | None = None, return_state: bool = False,
                head: bool = True):
        name = type(self).__name__
        check_idx(idx, self.config.vocab_size, name)
        config = self.config
        if state is not None:
            check_state(state, config, idx.shape[0])
        x = self.emb(idx)                                           # (B, T, C)
        checkpointing = config.grad_cp and self.training and torch.is_grad_enabled()
        carry, layers = (None,) * self.carry_size, []
        for i, block in enumerate(self.blocks):
            args = (x, *carry, config, *(state.layer(i) if state is not None else (None, None, None)))
            if checkpointing:                                       # recompute the block in the backward
                out = torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)
            else:
                out = block(*args)
            x, carry, layer_state = out[0], out[1:1 + self.carry_size], out[1 + self.carry_size:]
            layers.append(layer_state)
        x = self.ln_out(x)                                          # (B, T, C)
        logits = self.head(x) if head else x                        # (B, T, V), or the head's input
        if not return_state:
            return logits
        return logits, RWKVState([a for a, _, _ in layers], [s for _, s, _ in layers], [f for _, _, f in layers],
                                 config.family)

    def set_runtime(self, **changes) -> "RWKVModel":
        """Change runtime options (grad_cp, wkv_backend, ...) of this model only."""
        config = self.config.replace(**changes)
        if config.shape_signature() != self.config.shape_signature():
            raise ValueError(f"{type(self).__name__}.set_runtime changes runtime options only, not shapes")
        self.config = config
        return self


def check_idx(idx, vocab_size: int, model: str) -> None:
    """Token ids the model can take: an integer (B, T) tensor, T >= 1, ids in the vocabulary."""
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype not in (torch.int64, torch.int32):
        got = f"{tuple(idx.shape)} {idx.dtype}" if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ValueError(f"{model}: idx must be an integer tensor of shape (B, T), got {got}")
    if idx.shape[1] == 0:
        raise ValueError(f"{model}: idx holds no tokens (shape {tuple(idx.shape)}): T must be at least 1")
    if idx.device.type == "cpu" and idx.numel() and (idx.min() < 0 or idx.max() >= vocab_size):
        raise ValueError(f"{model}: token ids must lie in [0, {vocab_size}), got min {int(idx.min())} max "
                         f"{int(idx.max())}")


def check_state(state: RWKVState, config, batch_size: int) -> None:
    """A state given to the model must fit it: a ValueError naming what differs."""
    if not isinstance(state, RWKVState):
        raise ValueError(f"the state must be an RWKVState, got {type(state).__name__}")
    if state.family != config.family:
        raise ValueError(f"the state is of model family {state.family}, the model of {config.family}")
    expected = {"layers": config.n_layer, "batch": batch_size, "wkv": (config.n_head, config.head_size,
                                                                       config.head_size), "n_embd": config.n_embd}
    found = {"layers": state.n_layer, "batch": state.batch_size, "wkv": tuple(state.wkv[0].shape[1:]),
             "n_embd": state.att_shift[0].shape[1]}
    wrong = [f"{k} {found[k]} in the state, {v} in the model (or idx)" for k, v in expected.items() if found[k] != v]
    if wrong:
        raise ValueError("the state does not fit the model: " + "; ".join(wrong))
