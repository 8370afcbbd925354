"""src/wkv/host.py and launch.py: how a host kernel is called (the C launcher's arguments, in order),
what it refuses, and the stream and device of a CPU call."""

import ctypes

import pytest
import torch

from src.wkv.build import KernelSource
from src.wkv.host import HostKernel, pointer
from src.wkv.launch import current_stream, kernel_device


class Recorder:
    """Stands in for a C function of the library: records its arguments."""

    def __init__(self):
        self.calls, self.restype = [], "int"

    def __call__(self, *args):
        self.calls.append(args)


class Library:
    def __init__(self):
        self.wkv9_host_forward = Recorder()


def kernel(library):
    return HostKernel(library, KernelSource("wkv9"), 4,
                      forward=lambda k, x, stream=0: ("forward", k.N, x),
                      backward=lambda k, x, gy, stream=0: ("backward", k.N, x, gy))


def test_launch_passes_the_sizes_then_the_pointers_in_order():
    library = Library()
    a, b = torch.zeros(3), torch.ones(2, 2)
    kernel(library).launch("forward", 1, 2, 3, a, None, b)
    ((B, T, H, pa, null, pb),) = library.wkv9_host_forward.calls
    assert (B, T, H) == (1, 2, 3) and library.wkv9_host_forward.restype is None     # the launchers are void
    assert (pa.value, null.value, pb.value) == (a.data_ptr(), None, b.data_ptr())


@pytest.mark.parametrize("bad", [torch.zeros(4, 4).t(), torch.zeros(4, device="meta")])
def test_launch_refuses_what_the_c_side_cannot_read(bad):
    library = Library()
    with pytest.raises(ValueError, match="wkv9_host_forward: the host kernels take contiguous CPU tensors"):
        kernel(library).launch("forward", 1, 1, 1, bad)
    assert library.wkv9_host_forward.calls == []


def test_forward_and_backward_are_the_operators_functions_over_this_kernel():
    k = kernel(Library())
    assert k.forward("x", 0) == ("forward", 4, "x")
    assert k.backward("x", "gy", 0) == ("backward", 4, "x", "gy")


def test_pointer():
    t = torch.arange(4.0)
    assert isinstance(pointer(t), ctypes.c_void_p) and pointer(t).value == t.data_ptr()
    assert pointer(None).value is None


def test_cpu_calls_have_stream_zero_and_no_device():
    assert current_stream(torch.device("cpu")) == 0
    with kernel_device(torch.device("cpu")) as entered:
        assert entered is None
