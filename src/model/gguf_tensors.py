"""The small tensor builders the families' GGUF layouts share (src/model/rwkv6/gguf.py, rwkv7/gguf.py).

A GGUF entry is made from a list of RWKV-LM tensors by one of these: the tensor as it is, flattened to a
vector, transposed, or several (the token-shift lerps) stacked into llama.cpp's fused (n, 1, 1, C) tensor.
"""

from __future__ import annotations


def first(tensors):
    """The one source tensor, as it is."""
    return tensors[0]


def vector(tensors):
    """The one source tensor flattened, e.g. (1, 1, C) -> (C,)."""
    return tensors[0].reshape(-1)


def transposed(tensors):
    """The one source tensor, its two dimensions swapped."""
    return tensors[0].transpose(0, 1)


def stacked(tensors):
    """n vectors of C values -> (n, 1, 1, C): llama.cpp's fused lerp tensor."""
    import torch
    return torch.stack([t.reshape(1, 1, -1) for t in tensors])
