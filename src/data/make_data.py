"""jsonl -> binidx, tokenised with the RWKV World tokenizer.

    bash scripts/make_data.sh INPUT.jsonl OUT_PREFIX [--overwrite]     # writes OUT_PREFIX.bin / .idx

Each non-empty line is one document, one of:
    {"text": ...}                         one item, then the end-of-document token 0 (RWKV-LM's way)
    {"prompt": ..., "response": ...}      two items: the prompt's tokens, the response's tokens and 0
    {"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...]}
                                          a conversation in RWKV's chat template (src/data/chat.py):
                                          items alternating context and assistant reply, 0 at the end;
                                          an assistant turn may add "reasoning" (G1's <think>...</think>)
    {"prompt" or "messages": ..., "chosen": ..., "rejected": ...}
                                          a preference pair (src/data/pairs.py): three items, the context,
                                          the chosen response and 0, the rejected response and 0
Train the sft and chat kinds with --data_type sft: the loss on the responses (the assistant's turns) only;
--loss_on_reasoning 0 leaves an assistant's reasoning out of the loss (it joins the context). Train pairs
with --objective dpo.
One kind per file. A malformed line is an error that names the file and the line; nothing is written unless the whole input converts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .tokenizer import WorldTokenizer
from ..utils.files import check_output
from ..utils.cli import run_command
from .binidx import BinIdxWriter
from .chat import conversation_segments
from .pairs import is_pair_record, pair_texts

END_OF_DOCUMENT = 0
UTF8_BOM = b"\xef\xbb\xbf"
RECORD_FIELDS = {"text": ("text",), "sft": ("prompt", "response"), "chat": ("messages",)}   # the kinds of record


def parse_line(path: Path, number: int, line: str, loss_on_reasoning: bool = True) -> tuple[str, dict]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{number}: not valid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise ValueError(f"{path}:{number}: JSON nested too deeply to read") from None
    if isinstance(record, dict):
        kinds = [kind for kind, names in RECORD_FIELDS.items() if set(names) & set(record)]
        if len(kinds) > 1:
            found = ", ".join(repr(k) for k in record if any(k in RECORD_FIELDS[kind] for kind in kinds))
            raise ValueError(f"{path}:{number}: a record mixes the fields {found} of {' and '.join(kinds)} records; "
                             f"a line holds one kind: {{\"text\"}}, {{\"prompt\", \"response\"}} or {{\"messages\"}}")
    if is_pair_record(record):
        context, chosen, rejected = pair_texts(record, f"{path}:{number}")
        for name, text in (("context", context), ("chosen", chosen), ("rejected", rejected)):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ValueError(f"{path}:{number}: the {name} holds {text[e.start]!r}, which is not text "
                                 f"(a lone UTF-16 surrogate)") from None
        record["texts"] = (context, chosen, rejected)
        return "pairs", record
    if isinstance(record, dict) and "messages" in record:
        record["segments"] = conversation_segments(record["messages"], where=f"{path}:{number}: messages",
                                                   loss_on_reasoning=loss_on_reasoning)
        kind, fields = "chat", ()
        for text, _ in record["segments"]:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ValueError(f"{path}:{number}: a message holds {text[e.start]!r}, which is not text "
                                 f"(a lone UTF-16 surrogate)") from None
    elif isinstance(record, dict) and set(record) >= {"prompt", "response"}:
        kind, fields = "sft", ("prompt", "response")
    elif isinstance(record, dict) and "text" in record:
        kind, fields = "text", ("text",)
    else:
        got = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f'{path}:{number}: expected {{"text": ...}}, {{"prompt": ..., "response": ...}} or '
                         f'{{"messages": [...]}}, got {got}')
    for field in fields:
        if not isinstance(record[field], str):
            raise ValueError(f"{path}:{number}: {field!r} must be a string, got {type(record[field]).__name__}")
        try:
            record[field].encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"{path}:{number}: {field!r} holds {record[field][e.start]!r}, which is not text "
                             f"(a lone UTF-16 surrogate)") from None
    return kind, record


def make_data(input_path: str | Path, out_prefix: str | Path, tokenizer: WorldTokenizer | None = None,
              overwrite: bool = False, loss_on_reasoning: bool = True) -> dict:
    """Convert; returns counts. Raises ValueError / FileNotFoundError with file and line, and refuses
    to replace an existing data set unless `overwrite`. `loss_on_reasoning` False writes an assistant's
    reasoning into the context item before its answer, so --data_type sft trains on the answer alone."""
    input_path = Path(input_path)
    if input_path.is_dir():
        raise ValueError(f"{input_path} is a directory, not a .jsonl file")
    if not input_path.is_file():
        raise FileNotFoundError(f"{input_path} does not exist")
    if not Path(out_prefix).name or str(out_prefix).endswith(("/", os.sep)):
        raise ValueError(f"OUT_PREFIX {str(out_prefix)!r} names no file: give a path and a name, e.g. data/mydata")
    for ext in (".bin", ".idx"):
        check_output(f"{out_prefix}{ext}", "OUT_PREFIX", inputs=(input_path,), overwrite=overwrite)
    tokenizer = tokenizer or WorldTokenizer()
    kind = None
    documents = tokens = 0
    with BinIdxWriter(out_prefix) as writer, open(input_path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(UTF8_BOM):                 # a byte-order mark some editors write
                raw = raw[len(UTF8_BOM):]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{input_path}:{number}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if not line.strip():
                continue
            line_kind, record = parse_line(input_path, number, line, loss_on_reasoning=loss_on_reasoning)
            if kind is None:
                kind = line_kind
            elif line_kind != kind:
                raise ValueError(f"{input_path}:{number}: a {line_kind} record in a file of {kind} records; "
                                 f"use one kind per file")
            if kind == "text":
                items = [tokenizer.encode(record["text"]) + [END_OF_DOCUMENT]]
            elif kind == "pairs":
                context, chosen, rejected = record["texts"]
                items = [tokenizer.encode(context), tokenizer.encode(chosen) + [END_OF_DOCUMENT],
                         tokenizer.encode(rejected) + [END_OF_DOCUMENT]]
            elif kind == "chat":
                items = [tokenizer.encode(text) for text, _ in record["segments"]]
                items[-1] = items[-1] + [END_OF_DOCUMENT]
            else:
                items = [tokenizer.encode(record["prompt"]), tokenizer.encode(record["response"]) + [END_OF_DOCUMENT]]
            writer.add_document(items)
            documents += 1
            tokens += sum(len(i) for i in items)
        if documents == 0:
            raise ValueError(f"{input_path} holds no records (it is empty or only blank lines)")
    return {"kind": kind, "documents": documents, "tokens": tokens}


def main(argv: list[str] | None = None, tokenizer: WorldTokenizer | None = None) -> int:
    p = argparse.ArgumentParser(prog="make_data.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="a .jsonl file: {\"text\": ...}, {\"prompt\": ..., \"response\": ...}, "
                                 "{\"messages\": [{\"role\": ..., \"content\": ...}, ...]} or a preference pair "
                                 "{\"prompt\" or \"messages\", \"chosen\", \"rejected\"} per line")
    p.add_argument("out_prefix", help="writes OUT_PREFIX.bin and OUT_PREFIX.idx")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing OUT_PREFIX.bin / .idx (default: refuse)")
    p.add_argument("--loss_on_reasoning", type=int, choices=(0, 1), default=1,
                   help="in {\"messages\"} records, whether an assistant's reasoning (a \"reasoning\" field or "
                        "<think>...</think>) carries loss under --data_type sft; 0: it becomes context and only the "
                        "answer is learnt (default: 1)")
    args = p.parse_args(argv)
    start = time.time()

    def body() -> None:
        stats = make_data(args.input, args.out_prefix, tokenizer=tokenizer, overwrite=args.overwrite,
                          loss_on_reasoning=bool(args.loss_on_reasoning))
        print(f"wrote {args.out_prefix}.bin/.idx: {stats['documents']} {stats['kind']} documents, "
              f"{stats['tokens']:,} tokens, in {time.time() - start:.1f}s"
              + (" (train it with --data_type sft)" if stats["kind"] in ("sft", "chat") else "")
              + (" (train it with --objective dpo)" if stats["kind"] == "pairs" else ""))

    return run_command("make_data", body, interrupted="nothing was written (the data set appears whole or not at all)")


if __name__ == "__main__":
    sys.exit(main())
