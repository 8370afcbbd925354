"""Preference pairs: jsonl records -> binidx documents of three items, and the samples DPO trains on.

    {"prompt": "...", "chosen": "...", "rejected": "..."}
    {"messages": [{"role": "user", "content": "..."}, ...],
     "chosen": {"role": "assistant", "content": "...", "reasoning": "..."}, "rejected": {"role": "assistant", ...}}

`scripts/make_data.sh` writes each record as one document of three items (docs/formats.md):

    item 0  the context: the prompt as it is, or the conversation in RWKV's chat template up to the next
            reply's "Assistant:" (src/data/chat.py)
    item 1  the chosen response, then the end-of-document token 0
    item 2  the rejected response, then 0

(a conversation's responses in the G1 template: " " + [reasoning] + the reply). To RWKV-LM's reader it is
an ordinary token stream; our readers tell it by its three items per document. A sample is a pair:
x, y, mask of shape (2, ctx_len): row 0 the context followed by the chosen response, row 1 by the rejected
one, cut to ctx_len + 1 tokens, padded with 0, the mask 1 on the response's targets only.
"""

from __future__ import annotations

import numpy as np
import torch

from .binidx import BinIdx
from .chat import assistant_reply, conversation_prompt
from .dataset import TokenDataset

PAIR_FIELDS = ("chosen", "rejected")
PAIR_ITEMS = 3                          # context, chosen, rejected


def is_pair_record(record) -> bool:
    return isinstance(record, dict) and any(field in record for field in PAIR_FIELDS)


def pair_texts(record: dict, where: str) -> tuple[str, str, str]:
    """A pair record -> (context, chosen response, rejected response) as text; ValueError naming `where`."""
    missing = [f for f in PAIR_FIELDS if f not in record]
    if missing:
        raise ValueError(f"{where}: a preference pair needs both \"chosen\" and \"rejected\"; {missing[0]!r} is missing")
    has_prompt, has_messages = "prompt" in record, "messages" in record
    if has_prompt == has_messages:
        raise ValueError(f"{where}: a preference pair needs its context as \"prompt\" (text) or \"messages\" (a "
                         f"conversation), exactly one of them")
    extra = sorted(set(record) - {"prompt", "messages", *PAIR_FIELDS})
    if extra:
        raise ValueError(f"{where}: unknown field {extra[0]!r} in a preference pair (prompt or messages, chosen, "
                         f"rejected)")
    if has_prompt:
        texts = [record["prompt"], *(record[f] for f in PAIR_FIELDS)]
        for name, text in zip(("prompt", *PAIR_FIELDS), texts):
            if not isinstance(text, str):
                raise ValueError(f"{where}: {name!r} must be a string, got {type(text).__name__}")
        if not record["chosen"] or not record["rejected"]:
            raise ValueError(f"{where}: an empty {'chosen' if not record['chosen'] else 'rejected'!r} response")
        return record["prompt"], record["chosen"], record["rejected"]
    context = conversation_prompt(record["messages"], where=f"{where}: messages")
    responses = []
    for name in PAIR_FIELDS:
        reply = record[name]
        if not isinstance(reply, dict) or reply.get("role", "assistant") != "assistant":
            raise ValueError(f"{where}: {name!r} must be an assistant message {{\"role\": \"assistant\", \"content\": "
                             f"...}}, got {reply!r:.80}")
        responses.append("".join(text for text, _ in assistant_reply({"role": "assistant", **reply},
                                                                     where=f"{where}: {name}")))
    return context, responses[0], responses[1]


def check_pairs(data: BinIdx, ctx_len: int) -> None:
    """Data DPO can train on: every document three items (context, chosen, rejected), and in every pair a
    response token inside the ctx_len window of both responses. ValueError otherwise, naming the data."""
    if data.num_documents == 0:
        raise ValueError(f"{data.prefix} has no documents")
    items = np.diff(data.doc_idx)
    if np.any(items != PAIR_ITEMS):
        odd = sorted(set(items[items != PAIR_ITEMS].tolist()))[:3]
        raise ValueError(f"{data.prefix} holds documents of {odd} items, not preference pairs (context, chosen, "
                         f"rejected): write it from {{\"prompt\"/\"messages\", \"chosen\", \"rejected\"}} records with "
                         f"scripts/make_data.sh")
    contexts = data.sizes[data.doc_idx[:-1]].astype(np.int64)
    too_long = np.nonzero(contexts >= ctx_len)[0]
    if len(too_long):
        d = int(too_long[0])
        raise ValueError(f"{data.prefix}: pair {d} (and {len(too_long) - 1} more) has a context of {contexts[d]} tokens, "
                         f"at least ctx_len = {ctx_len}, so no response token is inside its sample; raise --ctx_len "
                         f"or shorten the prompts" if len(too_long) > 1 else
                         f"{data.prefix}: pair {d} has a context of {contexts[d]} tokens, at least ctx_len = {ctx_len}, "
                         f"so no response token is inside its sample; raise --ctx_len or shorten the prompt")


def pair_sample(data: BinIdx, document: int, ctx_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Document `document` -> x, y, mask (2, ctx_len): the chosen (row 0) and rejected (row 1) sequences."""
    context, chosen, rejected = data.document_items(document)
    rows = []
    for response in (chosen, rejected):
        tokens = np.concatenate([context, response]).astype(np.int64)[:ctx_len + 1]
        n = len(tokens)
        counted = np.zeros(ctx_len, np.float32)               # target t is tokens[t + 1]
        counted[len(context) - 1:n - 1] = 1.0
        tokens = np.pad(tokens, (0, ctx_len + 1 - n))
        rows.append((tokens[:-1], tokens[1:], counted))
    x, y, mask = (torch.from_numpy(np.stack(parts)) for parts in zip(*rows))
    return x, y, mask


class PairDataset(TokenDataset):
    """One rank's pairs, numbered and ordered as TokenDataset numbers its samples (so a resumed run goes on
    exactly): sample g is document `_document_order(g)`, documents visited in a seeded order pass after
    pass. Each item: x, y, mask of shape (2, ctx_len) (pair_sample)."""

    def __init__(self, data: BinIdx, ctx_len: int, seed: int = 0, micro_bsz: int = 1, rank: int = 0,
                 world_size: int = 1, first_batch: int = 0, num_batches: int = 0):
        check_pairs(data, ctx_len)
        self.data, self.data_type, self.ctx_len, self.seed = data, "pairs", ctx_len, seed
        self.micro_bsz, self.rank, self.world_size = micro_bsz, rank, world_size
        self.first_batch, self.num_batches = first_batch, num_batches

    def sample(self, g: int):
        """(x, y, mask (2, ctx_len), the pair's document number: the key of its precomputed reference)."""
        document = self._document_order(g)
        return (*pair_sample(self.data, document, self.ctx_len), document)
