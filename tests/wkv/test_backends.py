"""src/wkv/backends.py: the backend table, how "auto" resolves, and what the kernel backends refuse."""

import pytest
import torch

from src.wkv.backends import BACKENDS, KERNEL_BACKENDS, check_kernel_input, resolve_backend
from src.wkv6 import BACKENDS as WKV6_BACKENDS
from src.wkv7 import BACKENDS as WKV7_BACKENDS


def test_every_operator_offers_the_same_backends():
    assert BACKENDS == ("auto", "naive", "chunked", "cuda", "cuda_emulated")
    assert WKV6_BACKENDS == BACKENDS and WKV7_BACKENDS == BACKENDS
    assert set(KERNEL_BACKENDS) == {"cuda", "cuda_emulated"}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_auto_is_chunked_off_the_gpu_whatever_the_dtype(dtype):
    assert resolve_backend("auto", torch.zeros(1, 2, 8, dtype=dtype)) == "chunked"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_auto_takes_one_step_of_the_recurrence_for_one_token_off_the_gpu(dtype):
    """RNN-mode decoding feeds one token at a time: the step-by-step form is one update, no chunk to pad."""
    assert resolve_backend("auto", torch.zeros(4, 1, 8, dtype=dtype)) == "naive"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_auto_is_the_kernel_for_bf16_on_a_gpu_only():
    assert resolve_backend("auto", torch.zeros(1, 2, 8, dtype=torch.bfloat16, device="cuda")) == "cuda"
    assert resolve_backend("auto", torch.zeros(1, 2, 8, dtype=torch.float32, device="cuda")) == "chunked"
    assert resolve_backend("auto", torch.zeros(1, 1, 8, dtype=torch.bfloat16, device="cuda")) == "cuda"


@pytest.mark.parametrize("name", BACKENDS[1:])
def test_a_named_backend_is_itself(name):
    assert resolve_backend(name, torch.zeros(1, 2, 8)) == name


def test_an_unknown_backend_names_the_operator():
    with pytest.raises(ValueError, match=r"wkv9: backend must be one of \('auto', .*\), got 'triton'"):
        resolve_backend("triton", torch.zeros(1, 2, 8), "wkv9")


@pytest.mark.parametrize("backend,r,head_size,message", [
    ("cuda", torch.zeros(1, 2, 8, dtype=torch.bfloat16), 4, "wkv9(backend='cuda'): r is on cpu, expected a CUDA device"),
    ("cuda_emulated", torch.zeros(1, 2, 8), 4, "the inputs have dtype torch.float32, expected torch.bfloat16"),
    ("cuda_emulated", torch.zeros(1, 2, 6, dtype=torch.bfloat16), 6, "head size N = 6, expected a multiple of 4"),
    ("cuda_emulated", torch.zeros(1, 2, 128, dtype=torch.bfloat16), 128, "head size N = 128"),
])
def test_kernel_backends_refuse_what_the_kernels_cannot_take(backend, r, head_size, message):
    with pytest.raises(ValueError) as e:
        check_kernel_input("wkv9", backend, r, head_size)
    assert message in str(e.value)


def test_kernel_backends_take_bf16_and_the_built_head_sizes():
    for head_size in (4, 16, 64):
        check_kernel_input("wkv9", "cuda_emulated", torch.zeros(1, 2, head_size, dtype=torch.bfloat16), head_size)
