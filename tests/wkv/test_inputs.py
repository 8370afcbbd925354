"""src/wkv/inputs.py: the argument checks the entry points share, and the one head-size rule."""

import pytest
import torch

from src.wkv.inputs import DEFAULT_HEAD_SIZE, check_sequences, check_state, resolve_head_size


def test_head_size_given_wins():
    assert resolve_head_size("wkv9", 64, 16, {"u": torch.zeros(2, 32)}) == 16


def test_head_size_from_the_first_given_carrier():
    u, state = torch.zeros(2, 32), torch.zeros(1, 4, 16, 16)
    assert resolve_head_size("wkv9", 64, None, {"u": u, "state": state}) == 32
    assert resolve_head_size("wkv9", 64, None, {"u": None, "state": state}) == 16


def test_head_size_default_without_carriers():
    assert DEFAULT_HEAD_SIZE == 64
    assert resolve_head_size("wkv9", 128, None, {"state": None}) == 64
    with pytest.raises(ValueError, match="wkv9: C = 100 is not a multiple of head_size = 64"):
        resolve_head_size("wkv9", 100, None, {})


@pytest.mark.parametrize("head_size", [0, -8, 8.0, True])
def test_head_size_must_be_a_positive_int(head_size):
    with pytest.raises(ValueError, match="head_size must be a positive int"):
        resolve_head_size("wkv9", 64, head_size, {})


def test_sequences_share_shape_dtype_and_device():
    r = torch.zeros(2, 3, 8)
    assert check_sequences("wkv9", {"r": r, "k": r}, {"state": None}) == (2, 3, 8)
    cases = [({"r": r, "k": torch.zeros(2, 3)}, {}, "k has shape (2, 3), expected (B, T, C) = (2, 3, 8) like r"),
             ({"r": r, "k": r.double()}, {}, "k has dtype torch.float64, expected torch.float32 like r"),
             ({"r": r[0]}, {}, "r has shape (3, 8), expected (B, T, C)"),
             ({"r": r}, {"u": torch.zeros(2, 4, device="meta")}, "u is on meta, expected cpu like r"),
             ({"r": r}, {"u": torch.zeros(2, 4, dtype=torch.long)}, "u has dtype torch.int64, expected a floating"),
             ({"r": r, "k": 1.0}, {}, "k must be a torch.Tensor, got float")]
    for sequences, others, message in cases:
        with pytest.raises(ValueError) as e:
            check_sequences("wkv9", sequences, others)
        assert str(e.value) == f"wkv9: {message}" or str(e.value).startswith(f"wkv9: {message}"), str(e.value)


def test_state_shape():
    check_state("wkv9", None, 2, 3, 4)
    check_state("wkv9", torch.zeros(2, 3, 4, 4), 2, 3, 4)
    with pytest.raises(ValueError, match=r"wkv9: state has shape \(2, 3, 4, 5\), expected \(B, H, N, N\) = \(2, 3, 4, 4\)"):
        check_state("wkv9", torch.zeros(2, 3, 4, 5), 2, 3, 4)
