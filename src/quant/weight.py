"""A frozen (out, in) weight held quantised, and the product with it that keeps no weight for backward.

    qw = QuantizedWeight.from_float(W, QuantScheme("nf4"))     # W: (out, in), any float dtype
    qw.dequantize(torch.bfloat16)                             # Ŵ (out, in)
    qw.dequantize(torch.float32, rows=slice(0, 128))          # Ŵ[0:128] alone, from its own bytes
    y = quantized_linear(x, qw)                               # x Ŵ^T, gradient to x only

Storage (buffers, so the state dict reads `<layer>.weight.codes`, `<layer>.weight.absmax`):
    nf4 / fp4   codes uint8 (out*in/2,): two 4-bit codes a byte, row-major (bitsandbytes' packing, the
                first value of a pair in the high nibble); absmax fp32 (out*in/blocksize,), one per block
                of `blocksize` consecutive values; code fp32 (16,), the type's table (not saved).
    int8        codes int8 (out, in); absmax fp32 (out,), one scale per row: Ŵ = codes * absmax / 127.
A row holds whole blocks (QuantScheme.check_shape), so rows r0:r1 are codes [r0*in/2, r1*in/2) and
absmax [r0*in/bs, r1*in/bs): any range of rows dequantises alone, bit-identical to the same rows of the
whole matrix. Quantising is deterministic (the same W gives the same bytes), which is what lets an
adapter file name its base's quantisation instead of holding it.

Casting a model (model.to(torch.bfloat16), DeepSpeed's bf16 mode) moves these buffers but never
casts them: codes stay integers, absmax stays fp32; `dtype` (what dequantize gives by default) follows
the cast. The compute dtype of a product is the input's.
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backend import bnb_functional
from .scheme import QuantScheme


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        return libc.malloc_trim, libc.mallinfo2
    except (OSError, AttributeError):              # not glibc (2.33+): nothing to do
        return None


_GLIBC = _glibc()


def release_freed_host_memory(above: int = 256 * 2**20) -> None:
    """Give the C heap's free memory back to the system once more than `above` bytes of it are free
    (glibc's malloc_trim; a no-op elsewhere). Quantising on the CPU frees full-size temporaries between
    long-lived codes, and glibc keeps such holes: without this, loading a 0.4B model as int8 peaked at
    3.3x its quantised size. Trimming at every tensor would cost the page faults of re-touching them."""
    if _GLIBC is None:
        return
    trim, info = _GLIBC
    if info().fordblks > above:
        trim(0)


class QuantizedWeight(nn.Module):
    def __init__(self, codes: torch.Tensor, absmax: torch.Tensor, shape: tuple[int, int], scheme: QuantScheme,
                 dtype: torch.dtype, code: torch.Tensor | None = None):
        super().__init__()
        self.scheme = scheme
        self.shape = torch.Size(shape)
        self.dtype = dtype                                   # what dequantize gives by default (follows casts)
        self.source_dtype = dtype                            # the dtype it was quantised from (never changes)
        self.register_buffer("codes", codes)
        self.register_buffer("absmax", absmax)
        if code is not None:
            self.register_buffer("code", code, persistent=False)
        else:
            self.code = None

    @classmethod
    @torch.no_grad()
    def from_float(cls, weight: torch.Tensor, scheme: QuantScheme, name: str = "weight") -> "QuantizedWeight":
        """Quantise a float (out, in) weight on its own device."""
        if weight.dim() != 2:
            raise ValueError(f"{scheme.flag}: {name} has shape {tuple(weight.shape)}, not (out, in)")
        out_features, in_features = weight.shape
        scheme.check_shape(name, out_features, in_features)
        functional = bnb_functional(weight.device)
        source_dtype = weight.dtype
        w = weight.detach()
        if w.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            w = w.float()                                    # float64 (the tests): quantised from fp32
        if not torch.isfinite(w).all():
            raise ValueError(f"{scheme.flag}: {name} ({out_features} x {in_features}) holds NaN or infinite values")
        if scheme.four_bit:
            packed, state = functional.quantize_4bit(w.contiguous(), blocksize=scheme.blocksize,
                                                     compress_statistics=False, quant_type=scheme.kind)
            return cls(packed.view(-1), state.absmax.float(), weight.shape, scheme, source_dtype,
                       code=state.code.float())
        codes, scales, _ = functional.int8_vectorwise_quant(w.contiguous(), threshold=0.0)
        zero = scales == 0                                   # an all-zero row: codes 0, not NaN cast to int8
        if zero.any():
            codes[zero] = 0
        return cls(codes, scales.float(), weight.shape, scheme, source_dtype)

    # --- what a weight tensor would say ---------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.codes.device

    @property
    def is_meta(self) -> bool:
        return self.codes.is_meta

    @property
    def out_features(self) -> int:
        return self.shape[0]

    @property
    def in_features(self) -> int:
        return self.shape[1]

    def numel(self) -> int:
        return self.shape.numel()

    def nbytes(self) -> int:
        """Bytes held: codes and absmax (the code table is the scheme's, 64 bytes)."""
        held = self.codes.numel() * self.codes.element_size() + self.absmax.numel() * self.absmax.element_size()
        return held + (self.code.numel() * 4 if self.code is not None else 0)

    # --- dequantising ---------------------------------------------------------------------
    def dequantize(self, dtype: torch.dtype | None = None, rows: slice | None = None) -> torch.Tensor:
        """Ŵ, or its rows `rows` (a slice with step 1), as a new (rows, in) tensor in `dtype`."""
        dtype = dtype or self.dtype
        out_features, in_features = self.shape
        r0, r1, _ = (rows or slice(None)).indices(out_features)
        n = max(r1 - r0, 0)
        if n == 0:
            return torch.empty(0, in_features, dtype=dtype, device=self.device)
        functional = bnb_functional()
        work = dtype if dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32
        if self.scheme.four_bit:
            per_row = in_features // self.scheme.blocksize
            state = functional.QuantState(absmax=self.absmax[r0 * per_row:r1 * per_row],
                                          shape=torch.Size([n, in_features]), code=self.code,
                                          blocksize=self.scheme.blocksize, quant_type=self.scheme.kind, dtype=work)
            half = in_features // 2
            w = functional.dequantize_4bit(self.codes[r0 * half:r1 * half].view(-1, 1), state)
        else:
            w = self.codes[r0:r1].to(work) * (self.absmax[r0:r1].to(work) / 127.0)[:, None]
        return w.to(dtype)

    @torch.no_grad()
    def requantize_(self, weight: torch.Tensor) -> None:
        """Hold `weight` (same shape) instead, quantised in the same scheme (PiSSA's residual)."""
        new = QuantizedWeight.from_float(weight.to(self.device), self.scheme)
        self.codes, self.absmax = new.codes, new.absmax
        self.source_dtype = new.source_dtype

    def _apply(self, fn, recurse: bool = True):
        """Move, never cast: the codes and scales keep their dtypes whatever the model is cast to."""
        before = {name: t for name, t in self._buffers.items() if t is not None}
        probe = fn(torch.empty(0, dtype=self.dtype, device=self.codes.device))
        if probe.is_floating_point():            # a model cast to bf16 computes (and merges) in bf16
            self.dtype = probe.dtype
        super()._apply(fn, recurse)
        for name, old in before.items():
            new = self._buffers[name]
            if new.dtype != old.dtype:
                self._buffers[name] = old.to(device=new.device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quantized_linear(x, self)

    def extra_repr(self) -> str:
        return f"{self.shape[0]} x {self.shape[1]}, {self.scheme.describe()}"


class QuantizedLinearFunction(torch.autograd.Function):
    """y = x Ŵ^T with Ŵ dequantised in x's dtype for the product and dropped at once; the backward
    dequantises again, grad_x = grad_y Ŵ. Nothing of the weight is saved (the frozen base has no gradient)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: QuantizedWeight) -> torch.Tensor:
        ctx.weight = weight
        return F.linear(x, weight.dequantize(x.dtype))

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        if not ctx.needs_input_grad[0]:
            return None, None
        return grad_y @ ctx.weight.dequantize(grad_y.dtype), None


def quantized_linear(x: torch.Tensor, weight: QuantizedWeight) -> torch.Tensor:
    """(..., in) -> (..., out): x Ŵ^T."""
    if torch.is_grad_enabled() and x.requires_grad:
        return QuantizedLinearFunction.apply(x, weight)
    return F.linear(x, weight.dequantize(x.dtype))
