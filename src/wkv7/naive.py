"""The WKV7 recurrence, one time step at a time: the ground truth for the other backends.

Per head, with value index i and key index j (N = head size), state S of shape (N, N) indexed
[value, key] as in the `rwkv` package, and a_t, b_t, k_t, v_t, r_t column vectors:

    S_t = S_{t-1} diag(exp(-exp(w_t))) + (S_{t-1} a_t) b_t^T + v_t k_t^T
    y_t = S_t r_t

(RWKV-7 "Goose", Peng et al. 2025, arXiv:2503.14456, eq. 17 and the output of eq. 20, with the
model's a = -kk and b = kk * a, the in-context learning rate; S_0 is the given state or zeros.)
"""

from __future__ import annotations

import torch

from ..wkv.dtypes import compute_dtype
from ..wkv.inputs import DEFAULT_HEAD_SIZE


def wkv7_naive(r: torch.Tensor, w: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor,
               b: torch.Tensor, state: torch.Tensor | None = None,
               head_size: int = DEFAULT_HEAD_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """r, w, k, v, a, b: (B, T, C) with C = H * head_size; w raw (per-step decay exp(-exp(w)));
    state: (B, H, N, N) [value, key] or None.

    Returns y (B, T, C) in r's dtype and the final state (B, H, N, N) in float32 (float64 for
    float64 inputs). Differentiable in every input, state included.
    """
    B, T, C = r.shape
    N = head_size
    H = C // N
    ct = compute_dtype(r.dtype)
    r_, w_, k_, v_, a_, b_ = (x.to(ct).view(B, T, H, N) for x in (r, w, k, v, a, b))
    decay = torch.exp(-torch.exp(w_))                                     # (B, T, H, N)
    s = r_.new_zeros(B, H, N, N) if state is None else state.to(ct)
    ys = []
    for t in range(T):
        sa = torch.einsum("bhij,bhj->bhi", s, a_[:, t])                     # (B, H, N_value)  S a
        s = (s * decay[:, t, :, None, :] + sa[..., None] * b_[:, t, :, None, :]
             + v_[:, t, :, :, None] * k_[:, t, :, None, :])                 # (B, H, N_value, N_key)
        ys.append(torch.einsum("bhij,bhj->bhi", s, r_[:, t]))              # (B, H, N_value)  S r
    y = torch.stack(ys, dim=1).reshape(B, T, C) if T > 0 else r_.new_zeros(B, 0, C)
    return y.to(r.dtype), s
