"""Loss and perplexity of a model on binidx data, over consecutive non-overlapping windows.

    python eval.py --model rwkv6-3b.pth --adapter out/bone --data data/held_out --ctx_len 1024
    {"loss": 2.31, "ppl": 10.07, "tokens": 523264}          # the last line of stdout

Window i is tokens [i * ctx_len, (i + 1) * ctx_len + 1) of the data's token stream (documents
one after another, as binidx training reads them): ctx_len inputs, each predicting the next
token. The last window is shorter when the data ends inside it. The loss is the mean over every
predicted token, not over windows; with --data_type sft only tokens of the response items count
(an sft document alternates context and response items: src/data/dataset.py). Each window
starts from the model's starting state (zeros, a tuned state, or --state), as a document does.
train.py's --val_data runs the same evaluation during training.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..data import BinIdx
from ..model import RWKVState
from ..utils.cli import run_command

EVAL_DATA_TYPES = ("binidx", "sft")


def windows(num_tokens: int, ctx_len: int, max_windows: int | None = None) -> list[tuple[int, int]]:
    """[(start, end)] of the windows: tokens [i * ctx_len, min((i + 1) * ctx_len + 1, num_tokens)), each
    predicting at least one token."""
    out = []
    start = 0
    while start + 1 < num_tokens and (max_windows is None or len(out) < max_windows):
        out.append((start, min(start + ctx_len + 1, num_tokens)))
        start += ctx_len
    return out


def response_tokens(data: BinIdx) -> np.ndarray:
    """(num_tokens,) bool: whether each token of the stream belongs to a response item (the odd items of
    each document)."""
    items = np.arange(len(data.sizes))
    documents = np.searchsorted(data.doc_idx, items, side="right") - 1
    odd = (items - data.doc_idx[documents]) % 2 == 1
    return np.repeat(odd, data.sizes.astype(np.int64))


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits (..., V), targets (...) -> each token's cross-entropy (...), float32 (float64 stays)."""
    wide = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return F.cross_entropy(wide.flatten(0, -2), targets.flatten(), reduction="none").reshape(targets.shape)


def token_losses(head: torch.nn.Module, features: torch.Tensor, targets: torch.Tensor,
                 head_chunk: int) -> torch.Tensor:
    """features (B, T, C) (the head's input), targets (B, T) -> each token's cross-entropy (B, T), from the
    logits of at most `head_chunk` tokens at a time, as training's --head_chunk computes them
    (src/train/head_loss.py)."""
    B, T, C = features.shape
    flat, flat_targets = features.reshape(B * T, C), targets.reshape(B * T)
    return torch.cat([cross_entropy(head(flat[i:i + head_chunk]), flat_targets[i:i + head_chunk])
                      for i in range(0, B * T, head_chunk)]).reshape(B, T)


def check_positive(**flags: int | None) -> None:
    """Each flag given (None: not given) is a whole number >= 1, or a ValueError naming it and its value."""
    for flag, value in flags.items():
        if value is not None and value < 1:
            raise ValueError(f"--{flag} must be a positive whole number, got {value}")


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: BinIdx, ctx_len: int, data_type: str = "binidx",
             max_windows: int | None = None, state: RWKVState | None = None, batch_size: int = 1,
             head_chunk: int = 0) -> dict:
    """{"loss", "ppl", "tokens", "windows"} of `model` on `data` (see the module docstring). The model is
    put in eval mode for the evaluation and back as it was. `head_chunk`: the logits of at most this many
    tokens exist at once (0: a whole batch's)."""
    if data_type not in EVAL_DATA_TYPES:
        raise ValueError(f"--data_type must be one of {', '.join(EVAL_DATA_TYPES)}, got {data_type!r}")
    check_positive(ctx_len=ctx_len, batch_size=batch_size, max_windows=max_windows)
    if head_chunk < 0:
        raise ValueError(f"--head_chunk must not be negative, got {head_chunk}")
    spans = windows(data.num_tokens, ctx_len, max_windows)
    if not spans:
        raise ValueError(f"{data.prefix} holds {data.num_tokens} tokens: too few to predict one")
    counted = response_tokens(data) if data_type == "sft" else None
    device = next(model.parameters()).device
    training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for i in range(0, len(spans), batch_size):
            group = spans[i:i + batch_size]
            for same in ([s for s in group if s[1] - s[0] == n] for n in sorted({e - s for s, e in group})):
                tokens = torch.from_numpy(np.stack([np.asarray(data.window(s, e - s), dtype=np.int64)
                                                    for s, e in same])).to(device)              # (b, n)
                mask = (torch.from_numpy(np.stack([counted[s + 1:e] for s, e in same])).to(device) if counted is
                        not None else torch.ones_like(tokens[:, 1:], dtype=torch.bool))          # (b, n - 1)
                start = state.expand(len(same)) if state is not None and state.batch_size == 1 else state
                out = model(tokens[:, :-1], state=start, head=not head_chunk)       # (b, n - 1, V) or (.., C)
                losses = (token_losses(model.head, out, tokens[:, 1:], head_chunk) if head_chunk
                          else cross_entropy(out, tokens[:, 1:]))                                # (b, n - 1)
                total += float((losses * mask).sum())
                count += int(mask.sum())
    finally:
        model.train(training)
    if count == 0:
        raise ValueError(f"{data.prefix}: no predicted token counts (sft data whose windows hold no response token)")
    loss = total / count
    if not math.isfinite(loss):
        raise ValueError(f"the loss is {loss}: the model's logits are not finite on {data.prefix} (a NaN or infinite "
                         f"weight, adapter or state)")
    return {"loss": loss, "ppl": math.exp(min(loss, 700.0)), "tokens": count, "windows": len(spans)}


def main(argv: list[str] | None = None) -> int:
    from .generate import add_model_flags, check_model_paths, load_from_args
    p = argparse.ArgumentParser(prog="eval.py", description=__doc__.split("\n\n")[0])
    add_model_flags(p)
    p.add_argument("--data", required=True, metavar="PREFIX", help="binidx data: PREFIX.bin and PREFIX.idx (required)")
    p.add_argument("--ctx_len", type=int, default=1024, metavar="N", help="tokens per window (default: 1024)")
    p.add_argument("--max_windows", type=int, metavar="N", help="evaluate the first N windows only (default: all)")
    p.add_argument("--data_type", choices=EVAL_DATA_TYPES, default="binidx",
                   help="binidx: every token counts; sft: only the responses' tokens (default: binidx)")
    p.add_argument("--batch_size", type=int, default=1, metavar="N",
                   help="windows per forward (default: 1; more is faster and takes more memory)")
    p.add_argument("--head_chunk", type=int, default=0, metavar="N",
                   help="compute the logits of at most N tokens at a time, so a long window's (T, vocab) logits "
                        "never exist whole; the loss is the same (default: 0, all at once)")
    args = p.parse_args(argv)

    def body() -> int:
        check_positive(ctx_len=args.ctx_len, batch_size=args.batch_size, max_windows=args.max_windows)
        if args.head_chunk < 0:
            raise ValueError(f"--head_chunk must not be negative, got {args.head_chunk}")
        check_model_paths(args)
        data = BinIdx(args.data)
        model, state = load_from_args(args)
        data.check_vocabulary(model.config.vocab_size, f"--data {args.data}")
        start = time.time()
        result = evaluate(model, data, args.ctx_len, args.data_type, args.max_windows, state, args.batch_size,
                          args.head_chunk)
        print(f"eval.py: {result['windows']} windows of {args.ctx_len} tokens, {result['tokens']:,} predicted tokens "
              f"in {time.time() - start:.1f}s", file=sys.stderr)
        print(json.dumps({"loss": round(result["loss"], 6), "ppl": round(result["ppl"], 4),
                          "tokens": result["tokens"]}))
        return 0

    return run_command("eval.py", body, interrupted="nothing was written")


if __name__ == "__main__":
    sys.exit(main())
