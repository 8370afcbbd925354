"""src/plan/trace.py: Holdings on the meta device counts what HeldMemory measures on the CPU."""

import pytest
import torch

from src.bench.held import HeldMemory
from src.model import family_of
from src.plan.shapes import meta_model
from src.plan.trace import Holdings

from .conftest import peft_for, real_model, tiny


def test_meta_trace_equals_cpu_held_memory(family_name):
    config = tiny(family_name)
    peft = peft_for("bone")
    idx = torch.randint(0, config.vocab_size, (1, 48), generator=torch.Generator().manual_seed(1))
    model = real_model(config, peft)
    with HeldMemory() as held:
        out = model(idx, head=False)
        cpu_kept = held.bytes()
        out.sum().backward()
    meta = meta_model(config, peft, torch.float32, wkv_backend="chunked")
    with Holdings(operator=family_of(config).operator, batch_time=(1, 48)) as trace:
        out = meta(idx.to("meta"), head=False)
        meta_kept = trace.bytes()
        out.sum().backward()
    assert meta_kept == cpu_kept
    assert trace.peak_bytes() == pytest.approx(held.peak_bytes(), rel=1e-3)


@pytest.mark.slow
def test_operator_storages_are_told_apart(family_name):
    """On the CPU too: what the WKV operator made for itself is a part of the total, its (B, T, C) inputs noted,
    and its output (used by the GroupNorm after it) is not its own."""
    config = tiny(family_name)
    model = real_model(config, peft_for("bone"))
    idx = torch.zeros(1, 32, dtype=torch.long)
    with Holdings(operator=family_of(config).operator, batch_time=(1, 32)) as held:
        out = model(idx, head=False)                        # noqa: F841
        total, outside = held.bytes(), held.bytes(inside_operator=False)
        inputs = held.operator_inputs()
    assert 0 < outside < total
    assert held.calls == config.n_layer
    assert len(inputs) >= 4 * config.n_layer and all(n == 32 * config.dim_att for n, _ in inputs)
    assert outside >= config.n_layer * 32 * config.dim_att * 4     # each layer's WKV output, kept by its GroupNorm
