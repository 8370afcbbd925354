"""Training data: RWKV-LM's binidx files, the World tokenizer, jsonl conversion, resumable sampling.

    binidx.py      BinIdx (memory-mapped reader), BinIdxWriter (atomic writer)
    tokenizer.py   WorldTokenizer, from the `rwkv` pip package
    make_data.py   jsonl -> binidx (`bash scripts/make_data.sh`)
    dataset.py     TokenDataset: samples that depend on their number only, so runs resume exactly
"""

from .binidx import BinIdx, BinIdxWriter
from .dataset import DATA_TYPES, TokenDataset
from .tokenizer import WorldTokenizer

__all__ = ["BinIdx", "BinIdxWriter", "TokenDataset", "DATA_TYPES", "WorldTokenizer"]
