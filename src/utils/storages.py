"""Weak references to tensor storages, checked fast.

    ref = StorageWeakRef(tensor.untyped_storage())     # torch.multiprocessing.reductions
    freed(ref)                                          # True once no tensor holds that storage any more

The memory counters (src/bench/held.py HeldMemory, src/plan/trace.py Holdings) ask this of every
storage they follow after every operation. StorageWeakRef.expired() reaches the same C function
through two Python classmethods and an eval() per call, which made it most of a traced forward's
time; `freed` calls it directly.
"""

from __future__ import annotations

import torch

_expired = torch._C.StorageBase._expired          # (weak reference handle) -> bool


def freed(ref) -> bool:
    """Whether the storage behind a StorageWeakRef has been freed."""
    return _expired(ref.cdata)
