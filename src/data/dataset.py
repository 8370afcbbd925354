"""Training samples from binidx data: deterministic in the sample number, hence resumable.

Sample number g (counted over the whole run, all ranks) always gives the same
(x, y, mask), so a resumed run continues exactly where it stopped, whatever the number
of processes, and ranks never draw the same sample.

    binidx  RWKV-LM's sampling: a window of ctx_len + 1 tokens at a random offset of the
            flat token stream (across document boundaries); the loss on every token.
    pad     one document per sample (documents visited in a seeded random order, pass after
            pass), cut to ctx_len + 1 tokens or padded with 0; no loss past its end.
    sft     like pad, on data written from {"prompt", "response"} or {"messages"} records,
            whose documents alternate context and response items (context, response, context,
            response, ...): the loss only on the response tokens (and the end-of-document token).
"""

from __future__ import annotations

import numpy as np
import torch

from .binidx import BinIdx

DATA_TYPES = ("binidx", "pad", "sft")


def document_order(seed: int, g: int, n: int) -> int:
    """The document of sample g among n: the documents in a seeded random order, pass after pass."""
    permutation = np.random.default_rng([seed, 1, g // n]).permutation(n)
    return int(permutation[g % n])


class TokenDataset(torch.utils.data.Dataset):
    """One rank's view of the run's samples, from micro-batch `first_batch` on, `num_batches`
    micro-batches long. Sample numbers go micro-batch by micro-batch, rank by rank:
        item j -> g = ((first_batch + j // micro_bsz) * world_size + rank) * micro_bsz + j % micro_bsz
    Each item: x LongTensor (ctx_len,), y LongTensor (ctx_len,) (x shifted by one), mask float (ctx_len,)."""

    def __init__(self, data: BinIdx, data_type: str, ctx_len: int, seed: int = 0, micro_bsz: int = 1,
                 rank: int = 0, world_size: int = 1, first_batch: int = 0, num_batches: int = 0):
        if data_type not in DATA_TYPES:
            raise ValueError(f"data_type must be one of {DATA_TYPES}, got {data_type!r}")
        self.data, self.data_type, self.ctx_len, self.seed = data, data_type, ctx_len, seed
        self.micro_bsz, self.rank, self.world_size = micro_bsz, rank, world_size
        self.first_batch, self.num_batches = first_batch, num_batches
        req = ctx_len + 1
        if data_type == "binidx" and data.num_tokens < req:
            raise ValueError(f"{data.prefix} has {data.num_tokens} tokens, fewer than one window of "
                             f"ctx_len + 1 = {req}: lower --ctx_len or add data")
        if data_type != "binidx" and data.num_documents == 0:
            raise ValueError(f"{data.prefix} has no documents")
        if data_type == "sft":
            items_per_doc = np.diff(data.doc_idx)
            if np.any(items_per_doc < 2) or np.any(items_per_doc % 2):
                odd = sorted(set(items_per_doc[(items_per_doc < 2) | (items_per_doc % 2 == 1)].tolist()))[:3]
                raise ValueError(f"{data.prefix} was not written from prompt/response or messages records (documents "
                                 f"with {odd} items; sft needs context and response items in pairs); use --data_type "
                                 f"binidx or pad")
            prompt_lengths = data.sizes[data.doc_idx[:-1]]
            if not np.any(prompt_lengths < req - 1):
                raise ValueError(f"{data.prefix}: every prompt is at least ctx_len = {ctx_len} tokens long, so no "
                                 f"response token falls inside a sample; raise --ctx_len")
        if data_type != "binidx":
            # targets counted in document d's sample (see sample()): from max(prompt - 1, 0) to min(length, req) - 2
            lengths = np.add.reduceat(data.sizes.astype(np.int64), data.doc_idx[:-1]) if data.num_documents else []
            prompts = data.sizes[data.doc_idx[:-1]] if data_type == "sft" else np.zeros(len(lengths), np.int64)
            counted = np.minimum(lengths, req) - 1 - np.maximum(prompts.astype(np.int64) - 1, 0)
            if not np.any(counted > 0):
                raise ValueError(f"{data.prefix}: no sample has a target token to learn from (its documents are "
                                 f"empty{' or hold only prompts' if data_type == 'sft' else ''})")

    def __len__(self) -> int:
        return self.num_batches * self.micro_bsz

    def sample_number(self, j: int) -> int:
        batch, i = divmod(j, self.micro_bsz)
        return ((self.first_batch + batch) * self.world_size + self.rank) * self.micro_bsz + i

    def __getitem__(self, j: int):
        return self.sample(self.sample_number(j))

    def _document_order(self, g: int) -> int:
        return document_order(self.seed, g, self.data.num_documents)

    def sample(self, g: int):
        req = self.ctx_len + 1
        mask = np.ones(self.ctx_len, dtype=np.float32)
        if self.data_type == "binidx":
            offset = int(np.random.default_rng([self.seed, 0, g]).integers(0, self.data.num_tokens - req + 1))
            tokens = np.asarray(self.data.window(offset, req), dtype=np.int64)
        else:
            items = self.data.document_items(self._document_order(g))
            tokens = np.concatenate(items).astype(np.int64)[:req]
            n = len(tokens)
            tokens = np.pad(tokens, (0, req - n))
            mask[max(n - 1, 0):] = 0                          # targets past the document's end
            if self.data_type == "sft":                      # targets inside a context item (even items)
                counted = np.concatenate([np.full(len(item), k % 2, np.float32) for k, item in enumerate(items)])
                mask *= np.pad(counted[1:req], (0, req - min(len(counted), req)))
        x = torch.from_numpy(tokens[:-1].copy())
        y = torch.from_numpy(tokens[1:].copy())
        return x, y, torch.from_numpy(mask)
