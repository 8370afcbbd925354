"""Training data: RWKV-LM's binidx files and resumable sampling (jsonl conversion: src.data.make_data)."""

from .binidx import BinIdx, BinIdxWriter
from .dataset import DATA_TYPES, TokenDataset

__all__ = ["BinIdx", "BinIdxWriter", "TokenDataset", "DATA_TYPES"]
