"""Training data: RWKV-LM's binidx files, the World tokenizer, jsonl conversion, resumable sampling.

    binidx.py      BinIdx (memory-mapped reader), BinIdxWriter (atomic writer)
    tokenizer.py   WorldTokenizer, from the `rwkv` pip package
    make_data.py   jsonl -> binidx (`bash scripts/make_data.sh`)
    dataset.py     TokenDataset: samples that depend on their number only, so runs resume exactly
"""

from .binidx import BinIdx, BinIdxWriter
from .tokenizer import WorldTokenizer

__all__ = ["BinIdx", "BinIdxWriter", "TokenDataset", "DATA_TYPES", "WorldTokenizer"]


def __getattr__(name: str):
    """TokenDataset and DATA_TYPES (dataset.py imports torch) on first use, so that make_data.sh, which
    needs neither, starts without torch."""
    if name in ("TokenDataset", "DATA_TYPES"):
        from . import dataset
        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
