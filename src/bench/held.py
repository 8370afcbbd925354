"""What a forward leaves alive for its backward, in bytes, on any device (a CPU included).

    with HeldMemory() as held:
        loss = model(x)...                  # the forward
    held.bytes()                            # memory the forward allocated that is still alive
    held.peak_bytes()                       # the most of it alive at once while the mode was on

Every tensor an operation creates during the forward is noted (through a TorchDispatchMode,
so operations inside activation checkpointing are seen too) with a weak reference to its
storage; `bytes()` adds up the storages still alive. Between a forward and its backward,
those are what autograd keeps (saved tensors, checkpoint inputs, states between chunks) plus
the outputs. Views and in-place results are counted once, by their storage. The peak is the
largest sum of those alive, taken after every operation (around a forward and its backward: the
step's peak beyond the weights and what existed before).
"""

from __future__ import annotations

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..utils.storages import freed


class HeldMemory(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.storages: dict[StorageWeakRef, int] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {StorageWeakRef(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0]
                 if isinstance(t, torch.Tensor) and t.device.type != "meta"}
        made = False
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                ref = StorageWeakRef(t.untyped_storage())
                # a view or an in-place result shares an input's storage: noted when it was made, if in the forward
                if ref not in given:
                    self.storages[ref] = t.untyped_storage().nbytes()
                    made = True
        if made:                     # an operation that made nothing cannot raise the total, only free some of it
            self.peak = max(self.peak, self.bytes())
        return out

    def bytes(self) -> int:
        """The bytes of the storages made during the forward that are still alive."""
        for ref in [ref for ref in self.storages if freed(ref)]:        # forget the freed: the dict stays small
            del self.storages[ref]
        return sum(self.storages.values())

    def peak_bytes(self) -> int:
        """The most bytes of such storages alive at once, after any operation while the mode was on."""
        return self.peak
