"""Building our CUDA kernels (cuda/): for the GPU with nvcc, or their own source for the CPU.

Both go through torch.utils.cpp_extension (ninja) into torch's extension cache, once per kernel
and head size, and are rebuilt when a source (or a header it includes) changes.

    build_cuda_extension(name, sources, head_size)   the PyTorch extension (cuda/wkv*_op.cpp + .cu)
    build_host_library(name, source, head_size)      the .cu compiled by the host C++ compiler with
                                                     cuda/cuda_on_host.h, as a ctypes library
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from .paths import CUDA_SOURCES as CUDA_DIR


def defines(head_size: int) -> list[str]:
    return [f"-D_N_={head_size}"]


def nvcc_flags(head_size: int) -> list[str]:
    # No --use_fast_math: the exp(-exp(w)) decays keep full fp32 accuracy.
    return ["-O3", "-Xptxas=-O3", "--extra-device-vectorization", *defines(head_size)]


def build_cuda_extension(name: str, sources, head_size: int, build_directory: str | None = None,
                         verbose: bool = False):
    """Compile (first call) or load a kernel's PyTorch extension for this head size."""
    from torch.utils.cpp_extension import load
    if build_directory is not None:
        Path(build_directory).mkdir(parents=True, exist_ok=True)
    return load(name=name, sources=[str(s) for s in sources], extra_cflags=["-O3", *defines(head_size)],
                extra_cuda_cflags=nvcc_flags(head_size), build_directory=build_directory, verbose=verbose)


def build_host_library(name: str, source: Path, head_size: int, verbose: bool = False) -> ctypes.CDLL:
    """Compile (first call) or load a kernel's host build (its C launchers) for this head size."""
    from torch.utils.cpp_extension import get_default_build_root, load
    build_directory = Path(get_default_build_root()) / name
    build_directory.mkdir(parents=True, exist_ok=True)
    load(name=name, sources=[str(source)], is_python_module=False, build_directory=str(build_directory),
         extra_cflags=["-O2", "-std=c++17", *defines(head_size), f"-I{CUDA_DIR}", "-pthread", "-Wno-unknown-pragmas"],
         extra_ldflags=["-pthread"], verbose=verbose)
    return ctypes.CDLL(str(build_directory / f"{name}.so"))


SUPPORTED_HEAD_SIZES = tuple(range(4, 65, 4))         # what the kernels are built for (cuda/kernel_common.h)


def check_kernel_input(op: str, backend: str, r, head_size: int) -> None:
    """What the kernels take: bf16 inputs on a CUDA device ("cuda") or the CPU ("cuda_emulated"), a head
    size they are built for. A ValueError naming the operator and the backend otherwise."""
    import torch
    wanted = "cuda" if backend == "cuda" else "cpu"
    if r.device.type != wanted:
        raise ValueError(f"{op}(backend={backend!r}): r is on {r.device}, expected a "
                         f"{'CUDA device' if wanted == 'cuda' else 'CPU tensor'}")
    if r.dtype != torch.bfloat16:
        raise ValueError(f"{op}(backend={backend!r}): the inputs have dtype {r.dtype}, expected torch.bfloat16")
    if head_size not in SUPPORTED_HEAD_SIZES:
        raise ValueError(f"{op}(backend={backend!r}): head size N = {head_size}, expected a multiple of 4 between 4 "
                         f"and {SUPPORTED_HEAD_SIZES[-1]}")


class HostLibrary:
    """A kernel's host build for one head size: its C launchers, called with tensors' pointers."""

    def __init__(self, library: ctypes.CDLL, head_size: int, functions: tuple[str, ...]):
        self.library, self.N = library, head_size
        for name in functions:
            getattr(library, name).restype = None


def pointer(t) -> ctypes.c_void_p:
    """A tensor's data pointer for a ctypes call (None: a null pointer)."""
    return ctypes.c_void_p(t.data_ptr() if t is not None else None)
