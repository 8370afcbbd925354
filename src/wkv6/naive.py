"""The WKV6 recurrence, one time step at a time: the ground truth for the other backends.

Per head, with key index j and value index i (N = head size), state S of shape (N, N):

    y_t[i]    = sum_j r_t[j] * (u[j] * k_t[j] * v_t[i] + S_{t-1}[j, i])
    S_t[j, i] = exp(-exp(w_t[j])) * S_{t-1}[j, i] + k_t[j] * v_t[i]

(RWKV-6, "Eagle and Finch", eq. 14-17; S_0 is the given state or zeros.)
"""

from __future__ import annotations

import torch

from ..wkv.dtypes import compute_dtype


def wkv6_naive(r: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, u: torch.Tensor,
               state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """r, k, v, w: (B, T, C); u: (H, N) with C = H * N; state: (B, H, N, N) [key, value] or None.

    Returns y (B, T, C) in r's dtype and the final state (B, H, N, N) in float32
    (float64 for float64 inputs). Differentiable in every input, state included.
    """
    B, T, C = r.shape
    H, N = u.shape
    ct = compute_dtype(r.dtype)
    r_, k_, v_, w_ = (x.to(ct).view(B, T, H, N) for x in (r, k, v, w))
    u_ = u.to(ct)
    decay = torch.exp(-torch.exp(w_))
    s = r_.new_zeros(B, H, N, N) if state is None else state.to(ct)
    ys = []
    for t in range(T):
        kv = k_[:, t, :, :, None] * v_[:, t, :, None, :]              # (B, H, N_key, N_value)
        ys.append(torch.einsum("bhj,bhji->bhi", r_[:, t], u_[None, :, :, None] * kv + s))
        s = decay[:, t, :, :, None] * s + kv
    y = torch.stack(ys, dim=1).reshape(B, T, C) if T > 0 else r_.new_zeros(B, 0, C)
    return y.to(r.dtype), s
