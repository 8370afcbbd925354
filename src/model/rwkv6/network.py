"""RWKV6 ("x060", Finch) exactly as RWKV-LM trains it and RWKV-6 World checkpoints store it.

Parameter names and shapes are RWKV-LM's, so `model.state_dict()` is a checkpoint every
RWKV runtime reads (loading and saving: checkpoint.py). Shapes below: B batch, T time,
C n_embd, A dim_att, F dim_ffn, H heads, N head size (A = H * N), V vocabulary,
Dm / Dd the widths of the token-shift and decay LoRAs.

    x = emb(idx)                                   # (B, T, C)
    for each block: x = ln0(x) (block 0 only)
                    x = x + TimeMix(ln1(x))
                    x = x + ChannelMix(ln2(x))
    logits = head(ln_out(x))                       # (B, T, V)

The equations are Finch's (Peng et al. 2024, "Eagle and Finch: RWKV with Matrix-Valued
States and Dynamic Recurrence", arXiv:2404.05892), written out where they are computed.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...wkv6 import wkv6
from ..base import LN_X_EPS, RWKVBlock, RWKVModel, time_shift
from ..state import tuned_start
from .config import RWKV6Config

class TimeMix(nn.Module):
    """RWKV_Tmix_x060: data-dependent token shift, data-dependent decay, WKV6, GroupNorm, gate.

    Finch's time mixing, with x_t this token's input and x_{t-1} the previous one's:

        lerp_*(a, b)   = a + (b - a) * mu_*                         (mu_*: time_maa_*)
        lora_*(x)      = lambda_* + tanh(x A_*) B_*
        ddlerp_*(a, b) = a + (b - a) * lora_*(a + (b - a) * mu_x)   data-dependent token shift
        r, k, v, g     = ddlerp_{r,k,v,g}(x_t, x_{t-1}) W_{r,k,v,g}
        d_t            = lora_d(ddlerp_d(x_t, x_{t-1})),   w_t = exp(-exp(d_t))   per-channel decay
        wkv_t          = diag(u) k_t^T v_t + sum_{i<t} diag(prod_{i<j<t} w_j) k_i^T v_i   (per head)
        o_t            = (SiLU(g_t) * GroupNorm(r_t wkv_t)) W_o

    The five token-shift LoRAs share one down-projection (time_maa_w1, C -> 5 Dm) and keep
    five up-projections (time_maa_w2); their lambda_* are time_maa_{w,k,v,r,g}. The WKV sum is
    the recurrence of src/wkv6 (naive.py states it step by step), started from a given state
    S_0 (the previous piece's, see state.py) when there is one: then wkv_t gains
    diag(prod_{j<t} w_j) S_0. State tuning (src/peft/state.py) adds `time_state`, a trained
    S_0 stored [value, key] as in RWKV-LM, used when no state is given.
    """

    def __init__(self, config: RWKV6Config, layer_id: int):
        super().__init__()
        self.layer_id = layer_id
        C, A, H, N = config.n_embd, config.dim_att, config.n_head, config.head_size
        Dm, Dd = config.d_mix_lora, config.d_decay_lora
        # Registered in RWKV-LM's order, so saved checkpoints list keys the same way.
        self.time_maa_x = nn.Parameter(torch.empty(1, 1, C))        # mu_x
        self.time_maa_w = nn.Parameter(torch.empty(1, 1, C))        # lambda_d of the decay's token shift
        self.time_maa_k = nn.Parameter(torch.empty(1, 1, C))        # lambda_k
        self.time_maa_v = nn.Parameter(torch.empty(1, 1, C))        # lambda_v
        self.time_maa_r = nn.Parameter(torch.empty(1, 1, C))        # lambda_r
        self.time_maa_g = nn.Parameter(torch.empty(1, 1, C))        # lambda_g
        self.time_maa_w1 = nn.Parameter(torch.empty(C, 5 * Dm))     # the five A_* side by side
        self.time_maa_w2 = nn.Parameter(torch.empty(5, Dm, C))      # the five B_*
        self.time_decay = nn.Parameter(torch.empty(1, 1, A))        # lambda of lora_d
        self.time_decay_w1 = nn.Parameter(torch.empty(C, Dd))       # A_d
        self.time_decay_w2 = nn.Parameter(torch.empty(Dd, A))       # B_d
        self.time_faaaa = nn.Parameter(torch.empty(H, N))           # u, the bonus of the current token
        self.receptance = nn.Linear(C, A, bias=False)
        self.key = nn.Linear(C, A, bias=False)
        self.value = nn.Linear(C, A, bias=False)
        self.output = nn.Linear(A, C, bias=False)
        self.gate = nn.Linear(C, A, bias=False)
        self.ln_x = nn.GroupNorm(H, A, eps=LN_X_EPS)                # one group per head

    def forward(self, x: torch.Tensor, config: RWKV6Config, shift: torch.Tensor | None = None,
                state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, C), shift (B, C) x_{-1}, state (B, H, N, N) S_0 [key, value] ->
        (output (B, T, C), x_{T-1} (B, C), S_T (B, H, N, N) float32)."""
        B, T, C = x.shape
        if state is None and getattr(self, "time_state", None) is not None:
            state = tuned_start(self.time_state, B, config.family)  # (B, H, N, N): [value, key] -> [key, value]
        xx = time_shift(x, shift) - x                               # (B, T, C)  x_{t-1} - x_t
        xxx = x + xx * self.time_maa_x                              # (B, T, C)  lerp_x(x_t, x_{t-1})
        xxx = torch.tanh(xxx @ self.time_maa_w1)                    # (B, T, 5 Dm)  tanh(. A_*) for all five
        xxx = xxx.view(B * T, 5, -1).transpose(0, 1)                # (5, B*T, Dm)
        m = torch.bmm(xxx, self.time_maa_w2).view(5, B, T, C)       # (5, B, T, C)  tanh(. A_*) B_*
        mw, mk, mv, mr, mg = m.unbind(0)                            # 5 x (B, T, C)
        xw = x + xx * (self.time_maa_w + mw)                        # (B, T, C)  ddlerp_d(x_t, x_{t-1})
        xk = x + xx * (self.time_maa_k + mk)                        # (B, T, C)  ddlerp_k
        xv = x + xx * (self.time_maa_v + mv)                        # (B, T, C)  ddlerp_v
        xr = x + xx * (self.time_maa_r + mr)                        # (B, T, C)  ddlerp_r
        xg = x + xx * (self.time_maa_g + mg)                        # (B, T, C)  ddlerp_g

        r = self.receptance(xr)                                     # (B, T, A)
        k = self.key(xk)                                            # (B, T, A)
        v = self.value(xv)                                          # (B, T, A)
        g = F.silu(self.gate(xg))                                   # (B, T, A)  SiLU(g_t)
        d = torch.tanh(xw @ self.time_decay_w1) @ self.time_decay_w2  # (B, T, A)  tanh(. A_d) B_d
        w = self.time_decay + d                                     # (B, T, A)  d_t; the decay is exp(-exp(d_t))

        y, state = wkv6(r, k, v, w, self.time_faaaa, state=state, backend=config.wkv_backend,
                        chunk_size=config.wkv_chunk_size)           # (B, T, A)  r_t wkv_t; S_T (B, H, N, N)
        y = self.ln_x(y.reshape(B * T, -1)).view(B, T, -1)          # (B, T, A)  GroupNorm, per head
        return self.output(y * g), x[:, -1].clone(), state          # (B, T, C), (B, C) (a copy: a view would keep x), S_T


class ChannelMix(nn.Module):
    """RWKV_CMix_x060: token shift, squared-ReLU MLP gated by a sigmoid receptance.

        r'_t = lerp_r'(x_t, x_{t-1}) W_r',  k'_t = lerp_k'(x_t, x_{t-1}) W_k'
        o'_t = sigmoid(r'_t) * (ReLU(k'_t)^2 W_v')
    """

    def __init__(self, config: RWKV6Config, layer_id: int):
        super().__init__()
        self.layer_id = layer_id
        C, F_ = config.n_embd, config.dim_ffn
        self.time_maa_k = nn.Parameter(torch.empty(1, 1, C))
        self.time_maa_r = nn.Parameter(torch.empty(1, 1, C))
        self.key = nn.Linear(C, F_, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(F_, C, bias=False)

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, C), shift (B, C) x_{-1} -> (output (B, T, C), x_{T-1} (B, C))."""
        xx = time_shift(x, shift) - x                               # (B, T, C)
        xk = x + xx * self.time_maa_k                               # (B, T, C)  lerp_k'
        xr = x + xx * self.time_maa_r                               # (B, T, C)  lerp_r'
        k = torch.relu(self.key(xk)) ** 2                           # (B, T, F)
        return torch.sigmoid(self.receptance(xr)) * self.value(k), x[:, -1].clone()   # (B, T, C), (B, C)


class Block(RWKVBlock):
    def __init__(self, config: RWKV6Config, layer_id: int):
        super().__init__(config, layer_id, TimeMix, ChannelMix)

    def forward(self, x: torch.Tensor, config: RWKV6Config, att_shift: torch.Tensor | None = None,
                wkv: torch.Tensor | None = None, ffn_shift: torch.Tensor | None = None):
        """x (B, T, C) and this layer's state (None: the start of a sequence) -> (x, att_shift, wkv,
        ffn_shift), the state after the last token."""
        if self.layer_id == 0:
            x = self.ln0(x)
        att, att_shift, wkv = self.att(self.ln1(x), config, att_shift, wkv)
        x = x + att
        ffn, ffn_shift = self.ffn(self.ln2(x), ffn_shift)
        return x + ffn, att_shift, wkv, ffn_shift


class RWKV6(RWKVModel):
    """RWKV6: model(idx (B, T)) -> logits (B, T, V), or with state=..., return_state=True the state
    carried across calls (base.py). Parameters are left uninitialised: load a checkpoint
    (`load_model`) or initialise (`src.model.init_model`). Runtime options: grad_cp,
    wkv_backend, wkv_chunk_size."""

    def __init__(self, config: RWKV6Config):
        super().__init__(config, Block)
