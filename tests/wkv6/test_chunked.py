"""The chunk-parallel backend against the step-by-step reference, outputs and all gradients."""

import pytest
import torch

from src.wkv6 import wkv6
from src.wkv6.chunked import segment_sums, wkv6_chunked
from src.wkv6.naive import wkv6_naive
from tests.helpers import output_and_grads, rel_err, wkv_inputs

NAMES = ["y", "final_state", "grad_r", "grad_k", "grad_v", "grad_w", "grad_u", "grad_state"]


@pytest.mark.parametrize("B,T,H", [(1, 1, 1), (2, 17, 2), (3, 64, 1), (1, 257, 3), (2, 64, 4)])
def test_chunked_equals_naive_float64(B, T, H):
    inputs = wkv_inputs(B, T, H, seed=B * 1000 + T)
    ref = output_and_grads(lambda *a: wkv6(*a, backend="naive"), inputs)
    got = output_and_grads(lambda *a: wkv6(*a, backend="chunked"), inputs)
    for name, a, b in zip(NAMES, got, ref):
        assert a.dtype == torch.float64
        assert rel_err(a, b) < 1e-9, f"{name}: relative error {rel_err(a, b):.2e} at B={B} T={T} H={H}"


@pytest.mark.parametrize("chunk_size", [1, 3, 16, 64, 100])
def test_any_chunk_size_any_length(chunk_size):
    inputs = wkv_inputs(2, 31, 2, seed=chunk_size)     # 31 is prime: a partial last chunk
    ref = output_and_grads(wkv6_naive, inputs)
    got = output_and_grads(lambda *a: wkv6_chunked(*a, chunk_size=chunk_size), inputs)
    for name, a, b in zip(NAMES, got, ref):
        assert rel_err(a, b) < 1e-9, f"{name} with chunk_size={chunk_size}"


@pytest.mark.parametrize("w_value", [-8.0, 3.0, 6.0])
def test_extreme_decays_are_finite_and_exact_in_fp32(w_value):
    """Raw w at the ends of [-8, 3] (and beyond): per-step decay from 1 - 3e-4 to 2e-9."""
    inputs = wkv_inputs(1, 70, 2, dtype=torch.float32, seed=5)
    with torch.no_grad():
        inputs[3].fill_(w_value)
    got = output_and_grads(wkv6_chunked, inputs)
    ref = output_and_grads(wkv6_naive, [x.detach().double().requires_grad_() for x in inputs])
    for name, a, b in zip(NAMES, got, ref):
        assert torch.isfinite(a).all(), f"{name} not finite at w={w_value}"
        if name != "grad_w" or w_value < 6:     # at w=6 the decay underflows: grad_w is ~0 either way
            assert rel_err(a, b) < 2e-5, f"{name}: {rel_err(a, b):.2e} at w={w_value}"


def test_bf16_in_bf16_out():
    r, k, v, w, u, state = wkv_inputs(1, 20, 2, dtype=torch.bfloat16)
    y, final = wkv6(r, k, v, w, u, state, backend="chunked")
    assert y.dtype == torch.bfloat16 and final.dtype == torch.float32
    y_ref, final_ref = wkv6_naive(r, k, v, w, u, state)
    assert rel_err(y, y_ref) < 1e-2 and rel_err(final, final_ref) < 1e-5


def test_segment_sums():
    a = torch.tensor([[1.0], [2.0], [4.0], [8.0]])
    e = segment_sums(a)[..., 0]
    inf = float("-inf")
    expected = torch.tensor([[inf, inf, inf, inf],
                             [0.0, inf, inf, inf],       # (t=1, s=0): nothing strictly between
                             [2.0, 0.0, inf, inf],
                             [6.0, 4.0, 0.0, inf]])
    assert torch.equal(e, expected)
