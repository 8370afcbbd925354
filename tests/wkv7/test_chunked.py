"""src/wkv7/chunked.py against the step-by-step recurrence in float64: outputs, final states and all
seven gradients, any length (chunks that do and do not divide T), with and without an initial state,
for decays from nearly 1 to nearly 0."""

import pytest
import torch

from src.wkv7 import wkv7
from tests.helpers import rel_err
from tests.wkv7.test_naive import inputs


def run(backend, xs, state, chunk_size=16):
    xs = [x.clone().requires_grad_() for x in xs]
    s0 = state.clone().requires_grad_() if state is not None else None
    y, final = wkv7(*xs, state=s0, head_size=xs[0].shape[-1] // 2, backend=backend, chunk_size=chunk_size)
    g = torch.Generator().manual_seed(7)
    (y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum().backward(retain_graph=True)
    (final * torch.randn(final.shape, generator=g, dtype=final.dtype)).sum().backward()
    return [y, final, *(x.grad for x in xs), *([s0.grad] if s0 is not None else [])]


@pytest.mark.parametrize("T", [1, 7, 16, 33, 64])
@pytest.mark.parametrize("with_state", [True, False])
def test_chunked_equals_the_recurrence(T, with_state):
    r, w, k, v, a, b, state = inputs(B=2, T=T, H=2, N=8, seed=T)
    expected = run("naive", (r, w, k, v, a, b), state if with_state else None)
    actual = run("chunked", (r, w, k, v, a, b), state if with_state else None)
    for x, e in zip(actual, expected):
        assert rel_err(x, e) < 1e-10


def test_any_decay_and_chunk_size():
    r, w, k, v, a, b, state = inputs(B=1, T=45, H=2, N=8, seed=3)
    w = torch.linspace(-9.0, 3.0, w.numel(), dtype=torch.float64).view(w.shape)   # decay from ~1 to ~e^-20
    expected = run("naive", (r, w, k, v, a, b), state)
    for chunk_size in (4, 16, 64):
        for x, e in zip(run("chunked", (r, w, k, v, a, b), state, chunk_size), expected):
            assert torch.isfinite(x).all() and rel_err(x, e) < 1e-10


def test_float32_and_bfloat16_inputs():
    r, w, k, v, a, b, state = inputs(B=1, T=20, H=2, N=8, seed=5)
    reference, _ = wkv7(r, w, k, v, a, b, state=state, head_size=8, backend="naive")
    for dtype, limit in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        y, final = wkv7(*(x.to(dtype) for x in (r, w, k, v, a, b)), state=state.float(), head_size=8,
                        backend="chunked")
        assert y.dtype == dtype and final.dtype == torch.float32
        assert rel_err(y, reference) < limit


@pytest.mark.parametrize("chunk_size", [1, 5, 48])
@pytest.mark.parametrize("with_state", [True, False])
def test_a_non_default_chunk_size_reaches_the_chunked_backend_and_equals_naive(monkeypatch, chunk_size, with_state):
    """wkv7(..., chunk_size=L): L steps per chunk (1, one that leaves a partial last chunk, one longer than T),
    equal to the step-by-step recurrence in float64 on y, the final state and every gradient."""
    import src.wkv7
    from src.wkv7.chunked import wkv7_chunked
    seen = []
    monkeypatch.setattr(src.wkv7, "wkv7_chunked", lambda *a, **kw: seen.append(kw["chunk_size"]) or wkv7_chunked(*a, **kw))
    r, w, k, v, a, b, state = inputs(B=2, T=29, H=2, N=8, seed=chunk_size)
    expected = run("naive", (r, w, k, v, a, b), state if with_state else None)
    actual = run("chunked", (r, w, k, v, a, b), state if with_state else None, chunk_size)
    assert seen == [chunk_size]
    for x, e in zip(actual, expected):
        assert x.dtype == torch.float64 and rel_err(x, e) < 1e-10
