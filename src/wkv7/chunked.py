"""WKV7 in chunks of L steps: a few batched matrix products per chunk instead of one update per step.

Each row i of the state (a value index) evolves on its own; with s its row (over keys j),
v_t, sa_t scalars of that row and c_t[j] = sum of log-decays -exp(w) up to step t in the chunk:

    s_t  = s_{t-1} D_t + sa_t b_t^T + v_t k_t^T,          sa_t = s_{t-1} . a_t
    s_t  = s_0 exp(c_t) + sum_{tau <= t} (sa_tau b_tau + v_tau k_tau) * exp(c_t - c_tau)

so, for the L steps of a chunk at once (rows of all heads and batches together):

    sa (I - Mb) = s_0 A0 + v Mk      Mb[tau, t] = b_tau . (exp(c_{t-1} - c_tau) * a_t),  tau < t
                                     Mk[tau, t] = k_tau . (exp(c_{t-1} - c_tau) * a_t),  tau < t
                                     A0[:, t]   = exp(c_{t-1}) * a_t
    y        = s_0 R0 + sa Wb + v Wk                Wb, Wk: the same with c_t and r_t, tau <= t
    s_L      = s_0 diag(exp(c_L)) + sa Bd + v Kd    Bd[tau] = b_tau * exp(c_L - c_tau), Kd likewise

I - Mb is unit triangular: one triangular solve per chunk gives every sa. Every exponent is a
difference c_later - c_earlier <= 0, so no factor overflows whatever the decay (as in
src/wkv6/chunked.py), and the result equals the step-by-step recurrence (naive.py) up to float
rounding, for any T (the last chunk is padded with steps that change nothing). The chunks run
one after another only for s_0 @ (a few N x L and N x N matrices); everything else is batched.
Differentiable through autograd (the state in, the state out included).
"""

from __future__ import annotations

import torch

from ..wkv.dtypes import compute_dtype
from ..wkv.inputs import DEFAULT_HEAD_SIZE


def wkv7_chunked(r: torch.Tensor, w: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor,
                 b: torch.Tensor, state: torch.Tensor | None = None, head_size: int = DEFAULT_HEAD_SIZE,
                 chunk_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """As wkv7_naive (same arguments and results), computed a chunk of `chunk_size` steps at a time."""
    B, T, C = r.shape
    N, L = head_size, chunk_size
    H = C // N
    ct = compute_dtype(r.dtype)
    NC = -(-T // L)
    pad = NC * L - T

    def chunks(x: torch.Tensor, fill: float = 0.0) -> torch.Tensor:          # (B, T, C) -> (B, H, NC, L, N)
        x = x.to(ct)
        if pad:
            x = torch.cat([x, x.new_full((B, pad, C), fill)], dim=1)
        return x.view(B, NC, L, H, N).permute(0, 3, 1, 2, 4)

    r_, k_, v_, a_, b_ = (chunks(x) for x in (r, k, v, a, b))
    log_decay = chunks(-torch.exp(w.to(ct)))                                 # (B, H, NC, L, N), <= 0; 0 in padding
    c = torch.cumsum(log_decay, dim=3)                                        # c_t
    c_prev = c - log_decay                                                    # c_{t-1} (0 at a chunk's start)

    t_idx = torch.arange(L, device=r.device)
    before = (t_idx[None, :] < t_idx[:, None])                                # [t, tau]: tau < t
    upto = (t_idx[None, :] <= t_idx[:, None])                                 # [t, tau]: tau <= t

    def pair_factors(later: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """exp(later_t - c_tau) for the masked (t, tau), else 0: (B, H, NC, L_t, L_tau, N), exponents <= 0."""
        diff = later[:, :, :, :, None, :] - c[:, :, :, None, :, :]
        m = mask[None, None, None, :, :, None]
        return torch.where(m, torch.exp(torch.where(m, diff, torch.zeros_like(diff))), torch.zeros_like(diff))

    into_a = pair_factors(c_prev, before) * a_[:, :, :, :, None, :]           # [t, tau, j]
    into_r = pair_factors(c, upto) * r_[:, :, :, :, None, :]
    Mb = torch.einsum("bhctsj,bhcsj->bhcst", into_a, b_)                     # (B, H, NC, L_tau, L_t)
    Mk = torch.einsum("bhctsj,bhcsj->bhcst", into_a, k_)
    Wb = torch.einsum("bhctsj,bhcsj->bhcst", into_r, b_)
    Wk = torch.einsum("bhctsj,bhcsj->bhcst", into_r, k_)
    A0 = (torch.exp(c_prev) * a_).transpose(-1, -2)                           # (B, H, NC, N, L)
    R0 = (torch.exp(c) * r_).transpose(-1, -2)                                # (B, H, NC, N, L)
    c_end = c[:, :, :, -1:, :]                                                # (B, H, NC, 1, N)
    to_end = torch.exp(c_end - c)                                             # (B, H, NC, L, N), <= 1
    Bd, Kd = b_ * to_end, k_ * to_end                                         # (B, H, NC, L, N)
    g = torch.exp(c_end)                                                      # (B, H, NC, 1, N)
    I_minus_Mb = torch.eye(L, dtype=ct, device=r.device) - Mb                 # unit upper triangular

    V = v_.transpose(-1, -2)                                                  # (B, H, NC, N_v, L): rows i
    s = r_.new_zeros(B, H, N, N) if state is None else state.to(ct)           # (B, H, N_v, N_k)
    ys = []
    for n in range(NC):
        x = s @ A0[:, :, n] + V[:, :, n] @ Mk[:, :, n]                        # (B, H, N_v, L)
        sa = torch.linalg.solve_triangular(I_minus_Mb[:, :, n], x, upper=True, left=False, unitriangular=True)
        ys.append(s @ R0[:, :, n] + sa @ Wb[:, :, n] + V[:, :, n] @ Wk[:, :, n])   # (B, H, N_v, L)
        s = s * g[:, :, n] + sa @ Bd[:, :, n] + V[:, :, n] @ Kd[:, :, n]     # (B, H, N_v, N_k)
    y = torch.stack(ys, dim=2)                                                # (B, H, NC, N_v, L)
    y = y.permute(0, 2, 4, 1, 3).reshape(B, NC * L, C)[:, :T]                 # (B, T, C)
    return y.to(r.dtype), s
