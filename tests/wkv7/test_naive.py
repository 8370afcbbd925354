"""src/wkv7: the step-by-step recurrence against the state update written as matrices (the `rwkv`
package's form), its gradients against finite differences, the initial state in and out, bad input."""

import re

import pytest
import torch

from src.wkv7 import wkv7
from tests.helpers import rel_err


def inputs(B=2, T=7, H=2, N=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    C = H * N
    r, k, v = (torch.randn(B, T, C, generator=g, dtype=dtype) for _ in range(3))
    w = -torch.nn.functional.softplus(-torch.randn(B, T, C, generator=g, dtype=dtype)) - 0.5   # the model's range
    kk = torch.nn.functional.normalize(torch.randn(B, T, H, N, generator=g, dtype=dtype), dim=-1).view(B, T, C)
    a_rate = torch.sigmoid(torch.randn(B, T, C, generator=g, dtype=dtype))
    state = torch.randn(B, H, N, N, generator=g, dtype=dtype)
    return r, w, k, v, -kk, kk * a_rate, state


def matrices(r, w, k, v, a, b, state, N):
    """S_t = S_{t-1} (diag(exp(-exp(w_t))) + a_t b_t^T) + v_t k_t^T, y_t = S_t r_t, per (batch, head)."""
    B, T, C = r.shape
    H = C // N
    y = torch.zeros_like(r)
    S = state.clone()
    for bi in range(B):
        for h in range(H):
            s = S[bi, h]
            part = slice(h * N, (h + 1) * N)
            for t in range(T):
                transition = torch.diag(torch.exp(-torch.exp(w[bi, t, part]))) + torch.outer(a[bi, t, part], b[bi, t, part])
                s = s @ transition + torch.outer(v[bi, t, part], k[bi, t, part])
                y[bi, t, part] = s @ r[bi, t, part]
            S[bi, h] = s
    return y, S


@pytest.mark.parametrize("with_state", [False, True])
def test_naive_equals_the_matrix_form(with_state):
    r, w, k, v, a, b, state = inputs()
    start = state if with_state else torch.zeros_like(state)
    y, final = wkv7(r, w, k, v, a, b, state=state if with_state else None, head_size=4)
    y_ref, final_ref = matrices(r, w, k, v, a, b, start, 4)
    assert rel_err(y, y_ref) < 1e-12 and rel_err(final, final_ref) < 1e-12


def test_gradients_against_finite_differences():
    r, w, k, v, a, b, state = (x.requires_grad_() for x in inputs(B=1, T=4, H=1, N=4))

    def f(r, w, k, v, a, b, state):
        y, final = wkv7(r, w, k, v, a, b, state=state, head_size=4)
        return y, final

    assert torch.autograd.gradcheck(f, (r, w, k, v, a, b, state))


def test_pieces_with_the_state_carried_and_empty_input():
    r, w, k, v, a, b, state = inputs(T=9)
    y, final = wkv7(r, w, k, v, a, b, state=state, head_size=4)
    y1, mid = wkv7(*(x[:, :4] for x in (r, w, k, v, a, b)), state=state, head_size=4)
    y2, end = wkv7(*(x[:, 4:] for x in (r, w, k, v, a, b)), state=mid, head_size=4)
    assert rel_err(torch.cat([y1, y2], 1), y) < 1e-12 and rel_err(end, final) < 1e-12
    y0, same = wkv7(*(x[:, :0] for x in (r, w, k, v, a, b)), state=state, head_size=4)
    assert y0.shape == (2, 0, 8) and torch.equal(same, state)


@pytest.mark.parametrize("change, message", [
    (lambda x: {**x, "k": x["k"][:, :3]}, re.escape("k has shape (2, 3, 8), expected (B, T, C) = (2, 7, 8)")),
    (lambda x: {**x, "state": x["state"][:, :1]},
     re.escape("state has shape (2, 1, 4, 4), expected (B, H, N, N) = (2, 2, 4, 4)")),
    (lambda x: {**x, "head_size": 3}, "C = 8 is not a multiple of head_size = 3"),
    (lambda x: {**x, "head_size": 2}, re.escape("state has shape (2, 2, 4, 4), expected (B, H, N, N) = (2, 4, 2, 2)")),
    (lambda x: {**x, "a": x["a"].float()}, "a has dtype torch.float32, expected torch.float64 like r"),
    (lambda x: {**x, "chunk_size": 0}, "chunk_size must be a positive int, got 0"),
    (lambda x: {**x, "backend": "fast"}, "backend must be one of"),
])
def test_bad_input(change, message):
    r, w, k, v, a, b, state = inputs()
    args = {"r": r, "w": w, "k": k, "v": v, "a": a, "b": b, "state": state, "head_size": 4}
    with pytest.raises(ValueError, match=message):
        wkv7(**change(args))
