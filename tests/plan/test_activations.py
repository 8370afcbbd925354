"""src/plan/activations.py against HeldMemory on real CPU models (fp32, chunked backend): within 10%.

The estimate is traced at 2-3 layers and 16-32 tokens; these run other layer counts and lengths, so
they check the extrapolation in layers, tokens and samples. The CUDA kernel's part (kernels.py) cannot
run here: the kernel-mode estimate less the kernel's additions is checked against the CPU run's bytes
outside the operator."""

import pytest
import torch

from src.model import family_of
from src.peft.registry import PEFT_METHODS
from src.plan.activations import ActivationModel
from src.plan.trace import Holdings
from src.train.infctx import sample_loss
from src.bench.held import HeldMemory

from .conftest import held_forward, peft_for, real_model, tiny

TOLERANCE = 0.10


def check(method: str, family_name: str, grad_cp: bool, layers: int = 4, time: int = 96, batch: int = 2):
    config = tiny(family_name, n_layer=layers, grad_cp=grad_cp)
    peft = peft_for(method)
    estimate = ActivationModel(config, peft, torch.float32, kernel=False).kept(batch, time, grad_cp)
    measured = held_forward(real_model(config, peft), time, batch)
    assert abs(estimate / measured - 1) < TOLERANCE, (method, family_name, grad_cp, estimate, measured)
    return estimate, measured


def test_bone_kept_bytes():
    check("bone", "x070", False, layers=3, time=64, batch=2)


@pytest.mark.slow
@pytest.mark.parametrize("grad_cp", [False, True])
def test_bone_kept_bytes_both_families(family_name, grad_cp):
    check("bone", family_name, grad_cp)


@pytest.mark.slow
@pytest.mark.parametrize("grad_cp", [False, True])
@pytest.mark.parametrize("method", PEFT_METHODS)
def test_every_method_kept_bytes(family_name, method, grad_cp):
    check(method, family_name, grad_cp, layers=3, time=80, batch=1)


@pytest.mark.slow
def test_kernel_mode_replaces_only_the_operator(family_name):
    """kernel=True: the traced bytes outside the operator (measured on the CPU) plus the kernel's own."""
    config = tiny(family_name, n_layer=3)
    peft, time = peft_for("bone"), 64
    model = real_model(config, peft)
    with Holdings(operator=family_of(config).operator, batch_time=(1, time)) as held:
        out = model(torch.zeros(1, time, dtype=torch.long), head=False)      # noqa: F841
        outside = held.bytes(inside_operator=False)
        missing = sum(n * 4 for n, alive in held.operator_inputs() if not alive)
    acts = ActivationModel(config, peft, torch.float32, kernel=True)
    kernel_part = config.n_layer * acts.record.saved_extra(config, 1, time)
    # the estimate counts the inputs the kernel keeps in bf16 (2 bytes); here they are fp32
    non_kernel = acts.kept(1, time, False) - kernel_part
    assert abs(non_kernel / (outside + missing // 2) - 1) < TOLERANCE


@pytest.mark.slow
def test_infctx_keeps_the_states_between_chunks(family_name):
    config = tiny(family_name)
    peft = peft_for("bone")
    model = real_model(config, peft)
    time, chunk = 256, 64
    x = torch.randint(0, config.vocab_size, (1, time + 1), generator=torch.Generator().manual_seed(0))
    with HeldMemory() as held:
        loss = sample_loss(model, x[:, :-1], x[:, 1:], torch.ones(1, time), True, chunk_ctx=chunk)
        kept = held.bytes()
    acts = ActivationModel(config, peft, torch.float32, kernel=False)
    boundaries = (time // chunk - 1) * acts.boundary(1)
    assert abs(boundaries / kept - 1) < TOLERANCE, (boundaries, kept)
    # the component: the boundaries plus one chunk's activations
    assert acts.peak(1, time, False, chunk) == boundaries + acts.peak(1, chunk, False)
    loss.backward()


@pytest.mark.slow
def test_grad_cp_keeps_less_and_grows_with_tokens():
    config = tiny("x070", n_layer=4)
    acts = ActivationModel(config, peft_for("bone"), torch.bfloat16, kernel=True)
    assert acts.kept(1, 4096, True) < acts.kept(1, 4096, False) / 5
    assert acts.peak(1, 8192, True) > acts.peak(1, 4096, True)
    assert acts.kept(2, 1024, False) == pytest.approx(2 * acts.kept(1, 1024, False), rel=0.01)
