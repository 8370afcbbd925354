"""Shared test helpers: random WKV6 inputs, relative errors, tiny random checkpoints."""

from __future__ import annotations

import torch


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (0 when both are zero)."""
    actual, expected = actual.detach().double(), expected.detach().double()
    scale = expected.abs().max().item()
    diff = (actual - expected).abs().max().item()
    return diff / scale if scale > 0 else diff


def wkv_inputs(B: int, T: int, H: int, N: int = 64, dtype=torch.float64, device="cpu", seed: int = 0,
               with_state: bool = True, w_range=(-8.0, 3.0)):
    """r, k, v, w, u, state with requires_grad; w raw, uniform over w_range."""
    g = torch.Generator().manual_seed(seed)
    C = H * N

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype=dtype, device=device)

    r, k, v = randn(B, T, C), randn(B, T, C, scale=0.5), randn(B, T, C)
    w = (torch.rand(B, T, C, generator=g, dtype=torch.float64) * (w_range[1] - w_range[0]) + w_range[0])
    w = w.to(dtype=dtype, device=device)
    u = randn(H, N, scale=0.5)
    state = randn(B, H, N, N, scale=0.5).to(torch.float64 if dtype == torch.float64 else torch.float32)
    tensors = [r, k, v, w, u] + ([state] if with_state else [])
    for t in tensors:
        t.requires_grad_(True)
    return tensors if with_state else tensors + [None]


def output_and_grads(fn, inputs, seed: int = 1, state_grad: bool = True):
    """Run fn(*inputs) -> (y, final_state); backprop fixed random cotangents into y (and into
    the final state when state_grad). The cotangents are bf16-representable, so a bf16 backend
    and a float64 reference see exactly the same ones.
    Returns [y, final_state, grad of every input that is not None]."""
    y, s = fn(*inputs)
    g = torch.Generator().manual_seed(seed)
    gy = torch.randn(y.shape, generator=g).to(torch.bfloat16).to(device=y.device, dtype=y.dtype)
    gs = torch.randn(s.shape, generator=g).to(torch.bfloat16).to(device=s.device, dtype=s.dtype)
    leaves = [x for x in inputs if x is not None]
    loss = (y * gy).sum() + ((s * gs).sum() if state_grad else 0)
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)      # T = 1 without a state gradient: w is unused
    return [y, s, *(torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads))]


def assert_matches_the_oracle(model, tokens: torch.Tensor, expected: torch.Tensor, tolerance: float = 1e-4) -> None:
    """The model's logits for `tokens` (T,) equal `expected` (T, V) (an independent implementation's);
    and the comparison is not vacuous: without the attention path's output they differ by > 1e-2."""
    with torch.no_grad():
        ours = model(tokens[None])[0]
        for block in model.blocks:
            block.att.output.weight.zero_()
        without_attention = model(tokens[None])[0]
    assert ours.shape == expected.shape
    assert rel_err(ours, expected) < tolerance
    assert rel_err(without_attention, expected) > 1e-2


def random_checkpoint(tmp_path, config, init, save, n_tokens: int, seed: int = 11):
    """A random non-zero fp32 checkpoint of `config` (init_model with nonzero=True, then save)
    and n_tokens random token ids to run through it: (path, tokens)."""
    path = tmp_path / "model.pth"
    save(init(config, seed=seed, nonzero=True), path, dtype=torch.float32)
    return path, torch.randint(0, config.vocab_size, (n_tokens,), generator=torch.Generator().manual_seed(0))


def rwkv_pip_model(path):
    """ChatRWKV's `rwkv` package's model of a .pth, strategy 'cpu fp32' (the oracle). The package runs
    gc.collect() while loading, which in a long test session walks every object the session holds (about a
    second each time); it is skipped here, nothing of the model depends on it."""
    import types
    from unittest import mock

    import rwkv.model      # reads RWKV_* environment variables at import: its business, not ours
    with mock.patch.object(rwkv.model, "gc", types.SimpleNamespace(collect=lambda *a: 0)):
        return rwkv.model.RWKV(model=str(path), strategy="cpu fp32", verbose=False)
