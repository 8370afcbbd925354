"""What a forward leaves alive for its backward, counted on any device, the meta device included.

    with Holdings(operator=family.operator) as held:     # the meta device: shapes only, no memory, no time
        out = model(idx, head=False)
        kept = held.bytes()                              # bytes made in the forward and still alive
        outside = held.bytes(inside_operator=False)      # the same, less what the WKV operator made for itself
        inputs = held.operator_inputs()                  # the operator's (B, T, ...) inputs: (elements, alive)

The planner runs the model families' own forward on the meta device under this mode: every
storage an operation creates is noted with a weak reference, exactly as src/bench/held.py's
HeldMemory does on a real device (which skips meta tensors), so what the trace counts is what
HeldMemory would measure on the CPU (tests/plan/test_trace.py checks they agree).

The WKV operator (the family's `Family.operator`: wkv6, wkv7) is told apart: a storage made while
that function is on the Python stack, and never used as an input outside it afterwards, is the
operator's own (the PyTorch `chunked` backend's intermediates). On a GPU in bf16 the CUDA kernel
runs instead, which keeps other tensors (src/plan/kernels.py), so the planner takes the
operator's own storages out and puts the kernel's in. The operator's tensor arguments shaped
(B, T, ...) are recorded as they arrive (the kernel keeps them for its backward).
"""

from __future__ import annotations

import sys
from typing import Callable

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..utils.storages import freed


def _tensors(tree) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


class Holdings(TorchDispatchMode):
    """A dispatch mode counting the storages made while it is on (see the module docstring).
    `operator`: the WKV function whose own storages are told apart (None: none are)."""

    def __init__(self, operator: Callable | None = None, batch_time: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.code = getattr(operator, "__code__", None)
        self.batch_time = batch_time                             # (B, T) of the operator's sequence inputs
        self.made: dict[StorageWeakRef, int] = {}                # storage -> its bytes
        self.internal: set[StorageWeakRef] = set()               # made inside the operator, not (yet) used outside
        self.inputs: list[tuple[StorageWeakRef, int]] = []       # the operator's (B, T, ...) arguments, in order
        self.live_inputs: set[StorageWeakRef] = set()            # those of them still alive
        self.calls = 0                                           # calls of the operator seen
        self.peak = 0

    def _operator_frame(self):
        """The frame of the operator's call when it is on the stack, else None."""
        if self.code is None:
            return None
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code is self.code:
                return frame
            frame = frame.f_back
        return None

    def _note_operator_inputs(self, frame) -> None:
        """Record the (B, T, ...) tensor arguments of the operator call running in `frame`; a call whose
        arguments are new storages is a new call (frames are not kept: they would keep their tensors alive)."""
        self.live_inputs = {ref for ref in self.live_inputs if not freed(ref)}
        new = []
        for value in frame.f_locals.values():
            if (isinstance(value, torch.Tensor) and value.dim() >= 3 and self.batch_time is not None
                    and tuple(value.shape[:2]) == self.batch_time):
                ref = StorageWeakRef(value.untyped_storage())
                if ref not in self.live_inputs:
                    new.append((ref, value.numel()))
                    self.live_inputs.add(ref)
        if new:
            self.calls += 1
            self.inputs.extend(new)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        frame = self._operator_frame()
        if frame is not None:
            self._note_operator_inputs(frame)
        given = {StorageWeakRef(t.untyped_storage()) for t in _tensors((args, kwargs))}
        if frame is None:                        # used outside the operator: an output of it, not its own
            self.internal -= given
        made = False
        for t in _tensors(out):
            ref = StorageWeakRef(t.untyped_storage())
            if ref not in given:                 # a view or an in-place result was noted when made
                self.made[ref] = t.untyped_storage().nbytes()
                made = True
                if frame is not None:
                    self.internal.add(ref)
        if made:                                 # an operation that made nothing cannot raise the total
            self.peak = max(self.peak, self.bytes())
        return out

    def _forget_freed(self) -> None:
        for ref in [ref for ref in self.made if freed(ref)]:
            del self.made[ref]
            self.internal.discard(ref)

    def bytes(self, inside_operator: bool = True) -> int:
        """Bytes of the storages made while the mode was on and still alive; without the operator's own."""
        self._forget_freed()
        return sum(n for ref, n in self.made.items() if inside_operator or ref not in self.internal)

    def peak_bytes(self) -> int:
        """The most bytes of such storages alive at once, after any operation while the mode was on."""
        return self.peak

    def operator_inputs(self) -> list[tuple[int, bool]]:
        """(elements, still alive outside the operator) of each (B, T, ...) tensor argument of the operator."""
        self._forget_freed()
        return [(n, (not freed(ref)) and ref in self.made and ref not in self.internal) for ref, n in self.inputs]
