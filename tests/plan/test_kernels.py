"""src/plan/kernels.py: the kernels' records, as their bindings allocate."""

from src.model import families, resolve_config
from src.plan.kernels import GENERIC, kernel_for


def test_every_family_operator_has_a_kernel_record():
    assert all(kernel_for(f.operator) is not GENERIC for f in families())
    assert kernel_for(print) is GENERIC


def test_state_checkpoints_every_16_steps():
    config = resolve_config("rwkv7-1.5b")
    record = next(kernel_for(f.operator) for f in families() if kernel_for(f.operator).state_every)
    H, N = config.n_head, config.head_size
    assert record.saved_extra(config, 2, 33) == 2 * H * 3 * N * N * 4       # ceil(33 / 16) = 3 states
