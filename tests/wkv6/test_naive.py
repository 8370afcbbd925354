"""The step-by-step reference against the closed form of the WKV6 recurrence (float64)."""

import pytest
import torch

from src.wkv6.naive import wkv6_naive
from tests.helpers import rel_err, wkv_inputs


def closed_form(r, k, v, w, u, state):
    """y_t = sum_j r_t[j] (u[j] k_t[j] v_t + sum_{s<t} D(s, t)[j] k_s[j] v_s + D(-1, t)[j] S_0[j]),
    D(s, t) = prod_{s<tau<t} exp(-exp(w_tau)): every term written out, no recurrence."""
    B, T, C = r.shape
    H, N = u.shape
    r, k, v, w = (x.detach().view(B, T, H, N) for x in (r, k, v, w))
    log_d = -torch.exp(w)                                           # (B, T, H, N)
    y = torch.zeros(B, T, H, N, dtype=torch.float64)
    for t in range(T):
        acc = u.detach()[None, :, :, None] * k[:, t, :, :, None] * v[:, t, :, None, :]
        for s in range(t):
            decay = torch.exp(log_d[:, s + 1:t].sum(1))              # (B, H, N)
            acc = acc + decay[..., None] * k[:, s, :, :, None] * v[:, s, :, None, :]
        acc = acc + torch.exp(log_d[:, :t].sum(1))[..., None] * state.detach()
        y[:, t] = torch.einsum("bhj,bhji->bhi", r[:, t], acc)
    final = torch.exp(log_d.sum(1))[..., None] * state.detach()
    for s in range(T):
        decay = torch.exp(log_d[:, s + 1:].sum(1))
        final = final + decay[..., None] * k[:, s, :, :, None] * v[:, s, :, None, :]
    return y.view(B, T, C), final


@pytest.mark.parametrize("B,T,H,N", [(1, 1, 1, 4), (2, 7, 3, 8), (1, 12, 2, 64)])
def test_naive_matches_closed_form(B, T, H, N):
    r, k, v, w, u, state = wkv_inputs(B, T, H, N, seed=T)
    y, final = wkv6_naive(r, k, v, w, u, state)
    y_ref, final_ref = closed_form(r, k, v, w, u, state)
    assert rel_err(y, y_ref) < 1e-12
    assert rel_err(final, final_ref) < 1e-12


def test_naive_zero_state_is_default():
    r, k, v, w, u, _ = wkv_inputs(2, 5, 2, 8, with_state=False)
    y0, s0 = wkv6_naive(r, k, v, w, u, None)
    y1, s1 = wkv6_naive(r, k, v, w, u, torch.zeros(2, 2, 8, 8, dtype=torch.float64))
    assert torch.equal(y0, y1) and torch.equal(s0, s1)


def test_naive_dtypes():
    r, k, v, w, u, state = wkv_inputs(1, 4, 2, 8, dtype=torch.bfloat16)
    y, final = wkv6_naive(r, k, v, w, u, state)
    assert y.dtype == torch.bfloat16 and final.dtype == torch.float32
