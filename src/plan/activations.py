"""Activations kept for the backward: traced from the family's own forward on the meta device.

    acts = ActivationModel(config, PeftConfig("bone", r=64), torch.bfloat16, kernel=True)
    acts.kept(batch=1, time=4096, grad_cp=False)      # bytes the forward leaves for the backward
    acts.block(batch=1, time=4096)                     # one block's share of that
    acts.boundary(batch=1)                             # the state handed from one infctx chunk to the next
    acts.peak(batch=1, time=4096, grad_cp=True, chunk_ctx=0)   # the component the plan reports

How. The model (with its adapters, cast as training casts it) runs on the meta device, T tokens of
one sample, `head=False`, under trace.Holdings: the bytes made in the forward and still alive are
exactly what autograd keeps (saved tensors, checkpointed blocks' inputs) plus the output. Four
traces, with 2 and 3 layers and T1 = 16 and T2 = 32 tokens, give

    kept(L, B, T) = B * (base(T) + L * block(T)),   base, block affine in T

(block(T) = kept(3, T) - kept(2, T), base(T) = kept(2, T) - 2 block(T): the embedding, the output,
and how block 0 differs from the others). Everything
kept is per sample and per token, so the four traces fix it for any B and T; tests/plan check the
extrapolation against src/bench/held.py's HeldMemory on real CPU models.

The WKV operator. The traces run the PyTorch `chunked` backend. With `kernel=True` (bf16 on a GPU,
where `wkv_backend auto` picks our CUDA kernel) its own intermediates are taken out and the kernel's
holdings put in: its (B, T, C) bf16 inputs where nothing else keeps them, and kernels.py's extra
(wkv7: the fp32 state every 16 steps). With `kernel=False` (fp32: the chunked backend also runs on a
GPU) the trace is taken as it is.

The backward adds, beyond what is kept: without grad_cp, the gradients of the block being
back-propagated (about one block's kept bytes); with grad_cp (src/model/base.py: only each block's
input is kept), one block recomputed and its gradients (two blocks' bytes). infctx (`chunk_ctx`,
src/train/infctx.py) keeps the state between every two chunks, and the backward recomputes one
chunk at a time: boundaries + the above for T = chunk_ctx.
"""

from __future__ import annotations

import torch

from ..model import family_of
from ..peft import PeftConfig
from .kernels import BF16, kernel_for
from .shapes import meta_model
from .trace import Holdings

T1, T2 = 16, 32          # multiples of the chunked backend's and the wkv7 kernel's 16-step chunks


class ActivationModel:
    """The activation bytes of one model, adapter method and dtype (see the module docstring)."""

    def __init__(self, config, peft: PeftConfig | None, dtype: torch.dtype, kernel: bool) -> None:
        self.config, self.peft, self.dtype, self.kernel = config, peft, dtype, kernel
        self.family = family_of(config)
        self.record = kernel_for(self.family.operator)
        self.fits: dict[bool, tuple[tuple[float, float], tuple[float, float]]] = {}
        self.calls_per_layer = 1
        self.inputs_per_call = 0
        self._boundary: int | None = None

    # --- tracing -------------------------------------------------------------------------
    def trace(self, layers: int, time: int, grad_cp: bool) -> int:
        """Bytes kept after the forward of `layers` blocks over `time` tokens of one sample (meta device)."""
        model = meta_model(self.config.replace(n_layer=layers), self.peft, self.dtype, grad_cp=grad_cp,
                           wkv_backend="chunked")
        idx = torch.zeros(1, time, dtype=torch.long, device="meta")
        with Holdings(operator=self.family.operator, batch_time=(1, time)) as held:
            out = model(idx, head=False)                       # noqa: F841  (the output is kept, as in training)
            if not self.kernel:
                return held.bytes()
            if grad_cp:                                        # the operator's storages were freed with its block
                return held.bytes(inside_operator=False)
            inputs = held.operator_inputs()
            self.calls_per_layer = max(1, held.calls // layers)
            self.inputs_per_call = len(inputs) // max(1, held.calls)
            added = sum(n * BF16 for n, alive in inputs if not alive)
            return held.bytes(inside_operator=False) + added

    def _fit(self, grad_cp: bool) -> tuple[tuple[float, float], tuple[float, float]]:
        """((base at T=0, base per token), (block at T=0, block per token)) for one sample."""
        if grad_cp not in self.fits:
            low, high = (2, 3) if self.config.n_layer >= 2 else (1, 1)     # one layer: traced as it is
            points = {}
            for time in (T1, T2):
                two, three = self.trace(low, time, grad_cp), self.trace(high, time, grad_cp)
                block = three - two if high > low else 0
                points[time] = (two - low * block, block)
            (b1, k1), (b2, k2) = points[T1], points[T2]
            slope_base, slope_block = (b2 - b1) / (T2 - T1), (k2 - k1) / (T2 - T1)
            self.fits[grad_cp] = ((b1 - slope_base * T1, slope_base), (k1 - slope_block * T1, slope_block))
        return self.fits[grad_cp]

    def _kernel_extra(self, batch: int, time: int) -> int:
        return self.record.saved_extra(self.config, batch, time) * self.calls_per_layer if self.kernel else 0

    # --- the model -----------------------------------------------------------------------
    def kept(self, batch: int, time: int, grad_cp: bool) -> int:
        """Bytes the forward of the whole model over (batch, time) keeps for the backward (head excluded)."""
        (base0, base1), (block0, block1) = self._fit(grad_cp)
        layers = self.config.n_layer
        per_sample = base0 + base1 * time + layers * (block0 + block1 * time)
        extra = 0 if grad_cp else layers * self._kernel_extra(batch, time)
        return int(round(batch * per_sample)) + extra

    def block(self, batch: int, time: int) -> int:
        """One block's kept bytes without checkpointing (what a recompute holds)."""
        _, (block0, block1) = self._fit(False)
        return int(round(batch * (block0 + block1 * time))) + self._kernel_extra(batch, time)

    def n_inputs(self, batch: int, time: int) -> int:
        """How many (B, T, C) sequences one operator call takes (the kernel's backward returns a gradient
        for each)."""
        self._fit(False)
        return self.inputs_per_call

    def boundary(self, batch: int) -> int:
        """Bytes of the state one infctx chunk hands the next (every layer's token shifts and WKV state)."""
        if self._boundary is None:
            model = meta_model(self.config, self.peft, self.dtype, wkv_backend="chunked")
            with torch.no_grad():
                _, state = model(torch.zeros(1, 1, dtype=torch.long, device="meta"), return_state=True)
            self._boundary = sum(t.numel() * t.element_size() for t in state.tensors())
        return batch * self._boundary

    def peak(self, batch: int, time: int, grad_cp: bool, chunk_ctx: int = 0) -> int:
        """The activations component: kept bytes and the backward's working set (module docstring)."""
        if chunk_ctx and chunk_ctx < time:
            chunks = -(-time // chunk_ctx)
            return (chunks - 1) * self.boundary(batch) + self.peak(batch, chunk_ctx, grad_cp)
        working = (2 if grad_cp else 1) * self.block(batch, time)
        return self.kept(batch, time, grad_cp) + working
