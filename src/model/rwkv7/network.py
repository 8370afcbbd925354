"""RWKV7 ("x070", Goose) exactly as RWKV-LM trains it (RWKV-v7/train_temp) and the `rwkv` package runs it.

Parameter names and shapes are RWKV-LM's, so `model.state_dict()` is a checkpoint RWKV runtimes
read. Shapes: B batch, T time, C n_embd, H heads, N head size (C = H * N), F dim_ffn (4C),
V vocabulary, Dw / Da / Dv / Dg the low-rank widths of the decay, in-context learning rate,
value residual and gate.

    x = ln0(emb(idx))                              # (B, T, C)
    for each block: x = x + TimeMix(ln1(x))        # also passes layer 0's v ("v_first") on
                    x = x + ChannelMix(ln2(x))
    logits = head(ln_out(x))                       # (B, T, V)

The equations are RWKV-7's (Peng et al. 2025, "RWKV-7 'Goose' with Expressive Dynamic State
Evolution", arXiv:2503.14456), written out where they are computed.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...wkv7 import wkv7
from ..base import LN_X_EPS, RWKVBlock, RWKVModel, time_shift
from ..state import tuned_start
from .config import RWKV7Config


class TimeMix7(nn.Module):
    """RWKV_Tmix_x070. With x_t this token's input, x_{t-1} the previous one's, and each
    lerp_*(x_t, x_{t-1}) = x_t + (x_{t-1} - x_t) * mu_* (mu_*: x_r, x_w, x_k, x_v, x_a, x_g):

        r, k, v   = lerp_{r,k,v} W_{r,k,v}
        d_t       = -softplus(-(w0 + tanh(lerp_w w1) w2)) - 0.5,  decay exp(-exp(d_t)) in (e^-e^-0.5, 1)
        a_t       = sigmoid(a0 + (lerp_a a1) a2)                  in-context learning rate
        kk_t      = normalize(k * k_k) per head                   the "removal" key
        k_t       = k * (1 + (a_t - 1) * k_a)
        v_t       = v + (v_first - v) * sigmoid(v0 + (lerp_v v1) v2)     layers > 0 (value residual)
        g_t       = sigmoid(lerp_g g1) g2
        S_t       = S_{t-1} diag(exp(-exp(d_t))) + (S_{t-1} (-kk_t)) (kk_t * a_t)^T + v_t k_t^T
        o_t       = (GroupNorm(S_t r_t) + (sum_head r_t * k_t * r_k) v_t) * g_t,  then W_o

    S (per head, N x N) is indexed [value, key] as in the `rwkv` package; src/wkv7 computes it.
    """

    def __init__(self, config: RWKV7Config, layer_id: int):
        super().__init__()
        self.layer_id = layer_id
        C, H, N = config.n_embd, config.n_head, config.head_size
        Dw, Da, Dv, Dg = config.d_decay_lora, config.d_aaa_lora, config.d_mv_lora, config.d_gate_lora
        # Registered in RWKV-LM's order, so saved checkpoints list keys the same way.
        self.x_r = nn.Parameter(torch.empty(1, 1, C))
        self.x_w = nn.Parameter(torch.empty(1, 1, C))
        self.x_k = nn.Parameter(torch.empty(1, 1, C))
        self.x_v = nn.Parameter(torch.empty(1, 1, C))
        self.x_a = nn.Parameter(torch.empty(1, 1, C))
        self.x_g = nn.Parameter(torch.empty(1, 1, C))
        self.w0 = nn.Parameter(torch.empty(1, 1, C))
        self.w1 = nn.Parameter(torch.empty(C, Dw))
        self.w2 = nn.Parameter(torch.empty(Dw, C))
        self.a0 = nn.Parameter(torch.empty(1, 1, C))
        self.a1 = nn.Parameter(torch.empty(C, Da))
        self.a2 = nn.Parameter(torch.empty(Da, C))
        self.v0 = nn.Parameter(torch.empty(1, 1, C))               # in layer 0 too (unused there), as RWKV-LM
        self.v1 = nn.Parameter(torch.empty(C, Dv))
        self.v2 = nn.Parameter(torch.empty(Dv, C))
        self.g1 = nn.Parameter(torch.empty(C, Dg))
        self.g2 = nn.Parameter(torch.empty(Dg, C))
        self.k_k = nn.Parameter(torch.empty(1, 1, C))
        self.k_a = nn.Parameter(torch.empty(1, 1, C))
        self.r_k = nn.Parameter(torch.empty(H, N))
        self.receptance = nn.Linear(C, C, bias=False)
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        self.ln_x = nn.GroupNorm(H, C, eps=LN_X_EPS)               # one group per head

    def forward(self, x: torch.Tensor, v_first: torch.Tensor | None, config: RWKV7Config,
                shift: torch.Tensor | None = None, state: torch.Tensor | None = None):
        """x (B, T, C), v_first (B, T, C) (None in layer 0), shift (B, C) x_{-1}, state (B, H, N, N) ->
        (output (B, T, C), v_first (B, T, C), x_{T-1} (B, C), S_T (B, H, N, N) float32)."""
        B, T, C = x.shape
        H, N = config.n_head, config.head_size
        if state is None and getattr(self, "time_state", None) is not None:
            state = tuned_start(self.time_state, B, config.family)  # tuned S_0, (B, H, N, N) [value, key]
        xx = time_shift(x, shift) - x                               # (B, T, C)  x_{t-1} - x_t
        xr, xw, xk = x + xx * self.x_r, x + xx * self.x_w, x + xx * self.x_k
        xv, xa, xg = x + xx * self.x_v, x + xx * self.x_a, x + xx * self.x_g

        r = self.receptance(xr)                                     # (B, T, C)
        w = -F.softplus(-(self.w0 + torch.tanh(xw @ self.w1) @ self.w2)) - 0.5   # (B, T, C)  d_t, log-log decay
        k = self.key(xk)                                            # (B, T, C)
        v = self.value(xv)                                          # (B, T, C)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)       # (B, T, C)  in-context learning rate
        g = torch.sigmoid(xg @ self.g1) @ self.g2                   # (B, T, C)

        kk = F.normalize((k * self.k_k).view(B, T, H, N), dim=-1, p=2.0).view(B, T, C)   # (B, T, C)
        k = k * (1 + (a - 1) * self.k_a)                            # (B, T, C)
        if self.layer_id == 0:
            v_first = v                                             # the value residual's source
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)

        y, state = wkv7(r, w, k, v, -kk, kk * a, state=state, head_size=N, backend=config.wkv_backend,
                        chunk_size=config.wkv_chunk_size)           # (B, T, C)  S_t r_t; S_T
        y = self.ln_x(y.reshape(B * T, C)).view(B, T, C)            # (B, T, C)  GroupNorm per head
        bonus = (r * k * self.r_k.view(1, 1, C)).view(B, T, H, N).sum(-1, keepdim=True)   # (B, T, H, 1)
        y = y + (bonus * v.view(B, T, H, N)).view(B, T, C)          # (B, T, C)  + (r . k r_k) v
        return self.output(y * g), v_first, x[:, -1].clone(), state


class ChannelMix7(nn.Module):
    """RWKV_CMix_x070: o'_t = ReLU(lerp_k(x_t, x_{t-1}) W_k)^2 W_v."""

    def __init__(self, config: RWKV7Config, layer_id: int):
        super().__init__()
        self.layer_id = layer_id
        C, F_ = config.n_embd, config.dim_ffn
        self.x_k = nn.Parameter(torch.empty(1, 1, C))
        self.key = nn.Linear(C, F_, bias=False)
        self.value = nn.Linear(F_, C, bias=False)

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        xx = time_shift(x, shift) - x                               # (B, T, C)
        k = torch.relu(self.key(x + xx * self.x_k)) ** 2            # (B, T, F)
        return self.value(k), x[:, -1].clone()                      # (B, T, C), (B, C)


class Block7(RWKVBlock):
    def __init__(self, config: RWKV7Config, layer_id: int):
        super().__init__(config, layer_id, TimeMix7, ChannelMix7)

    def forward(self, x: torch.Tensor, v_first: torch.Tensor | None, config: RWKV7Config,
                att_shift: torch.Tensor | None = None, wkv: torch.Tensor | None = None,
                ffn_shift: torch.Tensor | None = None):
        """-> (x, v_first, att_shift, wkv, ffn_shift): the output and this layer's state after the last token."""
        if self.layer_id == 0:
            x = self.ln0(x)
        att, v_first, att_shift, wkv = self.att(self.ln1(x), v_first, config, att_shift, wkv)
        x = x + att
        ffn, ffn_shift = self.ffn(self.ln2(x), ffn_shift)
        return x + ffn, v_first, att_shift, wkv, ffn_shift


class RWKV7(RWKVModel):
    """RWKV7: model(idx (B, T)) -> logits (B, T, V), or with state=..., return_state=True the state
    carried across calls (base.py; the WKV state here is [value, key]). Layer 0's values v_first
    pass from block to block within a step. Parameters are left uninitialised: load a checkpoint
    (`load_model`) or initialise (`src.model.init_model`). Runtime options: grad_cp, wkv_backend,
    wkv_chunk_size."""

    carry_size = 1                          # v_first

    def __init__(self, config: RWKV7Config):
        super().__init__(config, Block7)
