"""src/wkv/dispatch.py: the shared tail of the entry points, above all the empty sequence (T == 0),
which every backend answers without running: y empty, the initial state handed through."""

import pytest
import torch

from src.wkv.dispatch import dispatch, empty_sequence
from src.wkv6 import wkv6
from src.wkv7 import wkv7
from tests.helpers import wkv_inputs


def refusing():
    """Implementations that fail the test if called."""
    def never():
        raise AssertionError("an implementation ran for T == 0")
    return {name: never for name in ("naive", "chunked", "cuda", "cuda_emulated")}


FLOAT_CASES = [(torch.float64, torch.float64), (torch.float32, torch.float32), (torch.bfloat16, torch.float32)]


@pytest.mark.parametrize("backend,dtype,state_dtype", [
    *((backend, *dtypes) for backend in ("auto", "naive", "chunked") for dtypes in FLOAT_CASES),
    ("cuda_emulated", torch.bfloat16, torch.float32)])                 # the kernel takes bf16 only
def test_empty_sequence_hands_the_state_through_without_running(backend, dtype, state_dtype):
    r = torch.zeros(2, 0, 8, dtype=dtype)
    state = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    y, final = dispatch("wkv9", backend, r, state, 4, 16, refusing())
    assert y.shape == (2, 0, 8) and y.dtype == dtype
    assert final.dtype == state_dtype and torch.equal(final, state.detach().to(state_dtype))
    final.sum().backward()                             # a copy that keeps the state's gradient
    assert torch.equal(state.grad, torch.ones_like(state))
    with torch.no_grad():
        final.add_(1.0)
    assert not torch.equal(final.double(), state.detach())   # ... and not the caller's tensor


def test_empty_sequence_without_a_state_is_zeros_in_the_compute_dtype():
    y, final = empty_sequence(torch.zeros(3, 0, 12, dtype=torch.bfloat16), None, H=3, N=4)
    assert y.shape == (3, 0, 12) and final.shape == (3, 3, 4, 4)
    assert final.dtype == torch.float32 and not final.any()


def test_empty_sequence_still_checks_the_kernel_input():
    with pytest.raises(ValueError, match="expected torch.bfloat16"):
        dispatch("wkv9", "cuda_emulated", torch.zeros(1, 0, 8), None, 4, 16, refusing())


def test_both_operators_answer_empty_sequences_alike():
    r, k, v, w, u, state = wkv_inputs(2, 0, 2, N=8)
    y6, s6 = wkv6(r, k, v, w, u, state)
    y7, s7 = wkv7(r, w, k, v, r, r, state)
    assert y6.shape == y7.shape == (2, 0, 16)
    assert torch.equal(s6, state) and torch.equal(s7, state)


def test_the_chosen_implementation_runs():
    calls = []
    run = {name: (lambda name=name: calls.append(name) or (name, None))
           for name in ("naive", "chunked", "cuda", "cuda_emulated")}
    r = torch.zeros(1, 3, 8)
    assert dispatch("wkv9", "naive", r, None, 4, 16, run)[0] == "naive"
    assert dispatch("wkv9", "auto", r, None, 4, 16, run)[0] == "chunked"
    assert calls == ["naive", "chunked"]


def test_an_operator_must_implement_every_backend():
    with pytest.raises(TypeError, match=r"wkv9: no implementation given for backend\(s\) \['cuda', 'cuda_emulated'\]"):
        dispatch("wkv9", "naive", torch.zeros(1, 3, 8), None, 4, 16, {"naive": None, "chunked": None})


@pytest.mark.parametrize("chunk_size", [0, -4, 2.5, True])
def test_chunk_size_is_a_positive_int_for_every_backend(chunk_size):
    with pytest.raises(ValueError, match="wkv9: chunk_size must be a positive int"):
        dispatch("wkv9", "naive", torch.zeros(1, 3, 8), None, 4, chunk_size, refusing())
