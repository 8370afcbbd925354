"""Building an operator's CUDA kernel (cuda/): for the GPU with nvcc, or its own source for the CPU.

An operator's kernel is a `KernelSource`: its name <op> stands for the files cuda/<op>_cuda.cu (the
kernels), cuda/<op>_op.cpp (their PyTorch binding: forward and backward) and cuda/<op>_on_host.cpp
(plain C launchers <op>_host_forward / <op>_host_backward around the same kernels, compiled by the
host C++ compiler with cuda/cuda_on_host.h standing in for the CUDA headers).

A build is one `Build`: the kernel, the target ("cuda": the PyTorch extension; "host": the ctypes
library) and the head size, a compile-time constant (-D_N_). Both targets go through
torch.utils.cpp_extension (ninja) into torch's extension cache, are rebuilt when a source (or a
header it includes) changes, and are loaded once per process: `BUILDS`, keyed by the `Build`.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from ..utils.paths import CUDA_SOURCES as CUDA_DIR

SUPPORTED_HEAD_SIZES = tuple(range(4, 65, 4))         # what the kernels are built for (cuda/kernel_common.h)
TARGETS = ("cuda", "host")

__all__ = ["CUDA_DIR", "SUPPORTED_HEAD_SIZES", "TARGETS", "KernelSource", "Build", "BuildCache", "BUILDS",
           "defines", "nvcc_flags", "compile_build", "load_extension"]


def defines(head_size: int) -> list[str]:
    return [f"-D_N_={head_size}"]


def nvcc_flags(head_size: int) -> list[str]:
    # No --use_fast_math: the exp(-exp(w)) decays keep full fp32 accuracy.
    return ["-O3", "-Xptxas=-O3", "--extra-device-vectorization", *defines(head_size)]


@dataclass(frozen=True)
class KernelSource:
    """One operator's kernel in cuda/, named by its file prefix ("wkv6": cuda/wkv6_cuda.cu, ...)."""

    name: str

    @property
    def extension_sources(self) -> tuple[Path, Path]:
        """The PyTorch extension: the binding and the kernels."""
        return CUDA_DIR / f"{self.name}_op.cpp", CUDA_DIR / f"{self.name}_cuda.cu"

    @property
    def host_source(self) -> Path:
        """The host build: C launchers that #include the kernels' .cu."""
        return CUDA_DIR / f"{self.name}_on_host.cpp"

    def host_function(self, name: str) -> str:
        """The C symbol of a host launcher or query: <op>_host_<name>."""
        return f"{self.name}_host_{name}"


@dataclass(frozen=True)
class Build:
    """What distinguishes one compiled kernel from another: which kernel, for which target, which head size."""

    kernel: KernelSource
    target: Literal["cuda", "host"]
    head_size: int

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"Build.target must be one of {TARGETS}, got {self.target!r}")
        if self.head_size not in SUPPORTED_HEAD_SIZES:
            raise ValueError(f"Build.head_size = {self.head_size}: the kernels are built for {SUPPORTED_HEAD_SIZES}")

    @property
    def name(self) -> str:
        """Its name in torch's extension cache (a directory there; the extension's module name)."""
        return f"rwkv_{self.kernel.name}_{'on_host_' if self.target == 'host' else ''}n{self.head_size}"


def compile_build(build: Build):
    """Compile (when a source changed since the last build) and load: the extension module for "cuda",
    a ctypes.CDLL of the C launchers for "host"."""
    from torch.utils.cpp_extension import get_default_build_root, load
    if build.target == "cuda":
        return load(name=build.name, sources=[str(s) for s in build.kernel.extension_sources],
                    extra_cflags=["-O3", *defines(build.head_size)], extra_cuda_cflags=nvcc_flags(build.head_size),
                    verbose=False)
    build_directory = Path(get_default_build_root()) / build.name
    build_directory.mkdir(parents=True, exist_ok=True)
    load(name=build.name, sources=[str(build.kernel.host_source)], is_python_module=False,
         build_directory=str(build_directory),
         extra_cflags=["-O2", "-std=c++17", *defines(build.head_size), f"-I{CUDA_DIR}", "-pthread",
                       "-Wno-unknown-pragmas"],
         extra_ldflags=["-pthread"], verbose=False)
    return ctypes.CDLL(str(build_directory / f"{build.name}.so"))


class BuildCache:
    """The builds loaded in this process, one per `Build`: compiled (or found in torch's cache) on first use."""

    def __init__(self, compile: Callable[[Build], object] = compile_build):
        self._compile = compile
        self._loaded: dict[Build, object] = {}

    def load(self, build: Build):
        if build not in self._loaded:
            self._loaded[build] = self._compile(build)
        return self._loaded[build]

    def __contains__(self, build: Build) -> bool:
        return build in self._loaded


BUILDS = BuildCache()          # the process's loaded kernels


def load_extension(kernel: KernelSource, head_size: int):
    """The kernel's PyTorch extension for this head size: forward(...) and backward(...) as cuda/<op>_op.cpp binds them."""
    return BUILDS.load(Build(kernel, "cuda", head_size))
