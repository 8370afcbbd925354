"""The wkv6 entry point: backend choice and one clear ValueError per kind of bad input."""

import pytest
import torch

from src.wkv6 import resolve_backend, wkv6
from tests.helpers import rel_err, wkv_inputs


def test_auto_picks_chunked_on_cpu():
    r = torch.zeros(1, 2, 64, dtype=torch.bfloat16)
    assert resolve_backend("auto", r) == "chunked"
    assert resolve_backend("naive", r) == "naive"


def test_backends_agree_through_the_entry_point():
    inputs = wkv_inputs(2, 9, 2)
    y0, s0 = wkv6(*inputs, backend="naive")
    y1, s1 = wkv6(*inputs)
    assert rel_err(y1, y0) < 1e-12 and rel_err(s1, s0) < 1e-12


def test_empty_sequence_returns_the_state():
    r, k, v, w, u, state = wkv_inputs(2, 0, 2)
    y, final = wkv6(r, k, v, w, u, state)
    assert y.shape == (2, 0, 128) and torch.equal(final, state)
    y, final = wkv6(r, k, v, w, u)
    assert final.abs().sum() == 0


def base():
    r, k, v, w, u, state = wkv_inputs(2, 5, 2, dtype=torch.float32)
    return dict(r=r, k=k, v=v, w=w, u=u, state=state)


@pytest.mark.parametrize("change,message", [
    (dict(backend="triton"), "backend must be one of"),
    (dict(r=torch.zeros(2, 5)), "r has shape (2, 5), expected (B, T, C)"),
    (dict(k=torch.zeros(2, 6, 128)), "k has shape (2, 6, 128), expected (B, T, C) = (2, 5, 128)"),
    (dict(v=torch.zeros(2, 5, 128, dtype=torch.float64)), "v has dtype torch.float64, expected torch.float32"),
    (dict(w=torch.zeros(2, 5, 128, dtype=torch.long)), "w has dtype torch.int64, expected a floating-point"),
    (dict(u=torch.zeros(3, 64)), "u has shape (3, 64), expected (H, N) with H * N = C = 128"),
    (dict(state=torch.zeros(2, 2, 64, 32)), "state has shape (2, 2, 64, 32), expected (B, H, N, N) = (2, 2, 64, 64)"),
    (dict(u=torch.zeros(2, 64, device="meta")), "u is on meta, expected cpu"),
    (dict(backend="cuda"), "wkv6(backend='cuda'): r is on cpu, expected a CUDA device"),
    (dict(r=[1.0]), "r must be a torch.Tensor"),
])
def test_bad_input_is_a_clear_value_error(change, message):
    args = base()
    args.update(change)
    with pytest.raises(ValueError) as e:
        wkv6(**args)
    assert message in str(e.value)


def test_head_size_is_read_off_u_or_given_in_agreement_with_it():
    r, k, v, w, u, state = wkv_inputs(1, 4, 4, N=16)
    y, s = wkv6(r, k, v, w, u, state)
    y16, s16 = wkv6(r, k, v, w, u, state, head_size=16)
    assert torch.equal(y, y16) and torch.equal(s, s16)
    with pytest.raises(ValueError, match=r"u has shape \(4, 16\), expected \(H, N\) = \(2, 32\) for head_size = 32"):
        wkv6(r, k, v, w, u, state, head_size=32)
    with pytest.raises(ValueError, match="C = 64 is not a multiple of head_size = 24"):
        wkv6(r, k, v, w, u, state, head_size=24)
