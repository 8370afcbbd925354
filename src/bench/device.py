"""What the device is and how fast it runs: names, versions, timing, dense matmul rate, bandwidth."""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_ms(fn, device: str, reps: int, warmup: int) -> float:
    """The median wall time of fn() in milliseconds, the GPU synchronised around each call."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def device_name(device: str) -> str:
    """"NVIDIA H100 80GB HBM3", or "CPU: <model name>, N threads"."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {torch.get_num_threads()} threads"


def versions() -> str:
    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
    if torch.version.cuda:
        parts.append(f"CUDA {torch.version.cuda}")
    try:
        import importlib.metadata as md
        parts.append(f"fla-core {md.version('fla-core')}")
    except Exception:
        pass
    return ", ".join(parts)


def copy_bandwidth_gbs(device: str, nbytes: int = 2 << 30) -> float:
    """Device-to-device copy: reads and writes nbytes each."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device, reps=10, warmup=3)
    return 2 * nbytes / (ms / 1000) / 1e9


def matmul_tflops(device: str) -> float:
    """The device's dense matmul rate: bf16 8192^3 on a GPU, fp32 2048^3 on a CPU (median of 10)."""
    n, dtype = (8192, torch.bfloat16) if device == "cuda" else (2048, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    ms = median_ms(lambda: a @ b, device, reps=10, warmup=3)
    return 2 * n ** 3 / (ms / 1000) / 1e12


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where to run (default: auto, a GPU when one is visible)")


def resolve_device(parser: argparse.ArgumentParser, choice: str) -> str:
    """"cpu" or "cuda" for --device; asking for a GPU without one is a usage error."""
    device = ("cuda" if torch.cuda.is_available() else "cpu") if choice == "auto" else choice
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return device
