"""bitsandbytes, imported only when a quantised base is asked for, with one-line errors.

    bnb_functional("cpu")          # bitsandbytes.functional, checked to run on that device
"""

from __future__ import annotations

import logging
from functools import lru_cache

import torch

INSTALL = "pip install bitsandbytes==0.50.0"


class _QuietKernelHubNotice(logging.Filter):
    """On a CPU without the optional `kernels` package, bitsandbytes logs that it falls back to its own
    kernel when imported; the fallback is what we use, so the notice is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "kernels-community" not in record.getMessage()


@lru_cache(maxsize=None)
def _import():
    notice = _QuietKernelHubNotice()
    source = logging.getLogger("bitsandbytes.backends.cpu.ops")     # the logger the notice comes from
    source.addFilter(notice)
    try:
        import bitsandbytes.functional as functional
    except ImportError as e:
        raise ValueError(f"--quant needs bitsandbytes, which is not installed ({INSTALL}): {e}") from None
    except Exception as e:              # a broken install: a missing native library, a torch it was not built for
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"--quant: bitsandbytes is installed but cannot be imported: {first}") from None
    finally:
        source.removeFilter(notice)
    return functional


@lru_cache(maxsize=None)
def _works_on(device_type: str, index: int | None) -> str | None:
    """None when a 4-bit and an 8-bit round trip run on the device, else why not."""
    functional = _import()
    device = torch.device(device_type, index) if index is not None else torch.device(device_type)
    try:
        w = torch.linspace(-1, 1, 64 * 64, device=device).view(64, 64)
        q, state = functional.quantize_4bit(w, blocksize=64, compress_statistics=False, quant_type="nf4")
        functional.dequantize_4bit(q, state)
        functional.int8_vectorwise_quant(w, threshold=0.0)
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        return f"{type(e).__name__}: {first}"
    return None


def bnb_functional(device: str | torch.device | None = None):
    """bitsandbytes.functional; with `device`, checked to quantise and dequantise there (ValueError if not)."""
    functional = _import()
    if device is not None:
        device = torch.device(device)
        why = _works_on(device.type, device.index)
        if why:
            raise ValueError(f"--quant: bitsandbytes cannot quantise on {device}: {why}")
    return functional
