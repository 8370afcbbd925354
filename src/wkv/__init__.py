"""The WKV operator core: what the RWKV generations' state-update operators (src/wkv6, src/wkv7) share.

    backends.py   BACKENDS ("auto", "naive", "chunked", "cuda", "cuda_emulated"), resolve_backend ("auto":
                  the kernel for bf16 CUDA tensors, else naive for one token, chunked for more), what the kernel backends take
    dtypes.py     the compute dtype of the PyTorch backends; the kernels' bf16 / fp32 conventions
    inputs.py     argument checks shared by the entry points; the head-size rule; DEFAULT_HEAD_SIZE
    dispatch.py   dispatch: resolve the backend, check kernel input, T == 0 without computing, run
    build.py      KernelSource (an operator's files in cuda/), Build (kernel, target, head size),
                  the compiler flags, BUILDS: each build compiled and loaded once per process
    host.py       HostKernel: a kernel's host build (cuda_emulated) with its CUDA extension's interface
    launch.py     the current CUDA device and stream of a kernel call (none on the CPU)

Every operator has the same entry-point shape:

    y, final_state = wkv<N>(<per-step tensors>, <per-head parameters>, state=None, *,
                            head_size=None, chunk_size=16, backend="auto")

How a new operator (say RWKV-8's, src/wkv8/) plugs in:

    src/wkv8/naive.py          wkv8_naive(...): the recurrence step by step, in compute_dtype(r.dtype)
                               (dtypes.py); the float64 ground truth of the tests
    src/wkv8/chunked.py        wkv8_chunked(..., chunk_size=16): the same, a chunk of steps at a time
    src/wkv8/cuda.py           KERNEL = KernelSource("wkv8") for cuda/wkv8_cuda.cu, cuda/wkv8_op.cpp and
                               cuda/wkv8_on_host.cpp (include cuda/kernel_common.h); the autograd function
                               over `kernel.forward/backward` (run inside launch.kernel_device, given
                               launch.current_stream, cotangents through dtypes.kernel_cotangents);
                               wkv8_cuda(...) running it on load_extension(KERNEL, N)
    src/wkv8/cuda_emulated.py  forward(kernel, ...) and backward(kernel, ...) that allocate the outputs and
                               call kernel.launch("forward" | "backward", B, T, H, *tensors);
                               wkv8_cuda_emulated(...) running the autograd function on
                               load_host_kernel(KERNEL, N, forward, backward)
    src/wkv8/__init__.py       wkv8(...): check_sequences and resolve_head_size (inputs.py), its own
                               per-head shapes, check_state, then dispatch(op, backend, r, state, N,
                               chunk_size, {"naive": ..., "chunked": ..., "cuda": ..., "cuda_emulated": ...});
                               re-export BACKENDS
    tests/wkv8/                each backend against naive in float64: outputs, final states, all gradients

An operator package imports only from this core, never from another operator's package.
"""

from .backends import BACKENDS, KERNEL_BACKENDS, check_kernel_input, resolve_backend
from .build import BUILDS, SUPPORTED_HEAD_SIZES, Build, KernelSource, load_extension
from .dispatch import dispatch, empty_sequence
from .dtypes import KERNEL_DTYPE, KERNEL_STATE_DTYPE, compute_dtype, kernel_cotangents, kernel_state
from .host import HostKernel, load_host_kernel
from .inputs import DEFAULT_HEAD_SIZE, check_sequences, check_state, resolve_head_size
from .launch import current_stream, kernel_device

__all__ = ["BACKENDS", "KERNEL_BACKENDS", "resolve_backend", "check_kernel_input", "BUILDS", "SUPPORTED_HEAD_SIZES",
           "Build", "KernelSource", "load_extension", "dispatch", "empty_sequence", "KERNEL_DTYPE",
           "KERNEL_STATE_DTYPE", "compute_dtype", "kernel_cotangents", "kernel_state", "HostKernel",
           "load_host_kernel", "DEFAULT_HEAD_SIZE", "check_sequences", "check_state", "resolve_head_size",
           "current_stream", "kernel_device"]
