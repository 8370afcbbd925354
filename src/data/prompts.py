"""Prompts with reference answers, the data of reward tuning (GRPO): jsonl read whole and checked at start.

    {"prompt": "What is 7 * 6? Answer:", "answer": "42"}
    {"messages": [{"role": "user", "content": "What is 7 * 6?"}], "answer": "42"}

A "prompt" is continued as it is; "messages" (a conversation ending with a user turn) are written in RWKV's
chat template up to the next reply's "Assistant:" (src/data/chat.py), and a reply then ends at the end of
its turn ("\\n\\n") as well as at the end-of-document token. "answer" (a string or a number; optional)
is what the reward functions compare with. One kind of record per file; a bad line is an error naming
the file and the line, before anything is trained.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .chat import END_OF_TURN, conversation_prompt
from .dataset import TokenDataset, document_order


@dataclass(frozen=True)
class Prompt:
    text: str                  # the context the completions continue
    tokens: tuple[int, ...]
    answer: str | None


@dataclass
class PromptSet:
    path: Path
    prompts: list[Prompt]
    chat: bool                 # conversations: replies also end at the end of the assistant's turn

    def __len__(self) -> int:
        return len(self.prompts)


def read_prompts(path: str | Path, tokenizer) -> PromptSet:
    """Read and tokenise a prompt file; ValueError / FileNotFoundError naming the file and line."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--data_file {path} is a directory, not a .jsonl file of prompts")
    if not path.is_file():
        raise FileNotFoundError(f"--data_file {path} does not exist")
    prompts, kind = [], None
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{where}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, dict) or ("prompt" in record) == ("messages" in record):
                raise ValueError(f"{where}: expected {{\"prompt\": ..., \"answer\": ...}} or {{\"messages\": [...], "
                                 f"\"answer\": ...}}, got {sorted(record) if isinstance(record, dict) else record!r:.60}")
            extra = sorted(set(record) - {"prompt", "messages", "answer"})
            if extra:
                raise ValueError(f"{where}: unknown field {extra[0]!r} (prompt or messages, answer)")
            line_kind = "messages" if "messages" in record else "prompt"
            if kind is not None and line_kind != kind:
                raise ValueError(f"{where}: a {line_kind} record in a file of {kind} records; use one kind per file")
            kind = line_kind
            if kind == "prompt":
                text = record["prompt"]
                if not isinstance(text, str) or not text:
                    raise ValueError(f"{where}: \"prompt\" must be a non-empty string")
            else:
                text = conversation_prompt(record["messages"], where=f"{where}: messages")
            answer = record.get("answer")
            if isinstance(answer, bool) or not (answer is None or isinstance(answer, (str, int, float))) or (
                    isinstance(answer, float) and not math.isfinite(answer)):
                raise ValueError(f"{where}: \"answer\" must be a string or a number, got {answer!r:.40}")
            try:
                tokens = tuple(tokenizer.encode(text))
            except UnicodeEncodeError:
                raise ValueError(f"{where}: the prompt holds a lone UTF-16 surrogate, which is not text") from None
            prompts.append(Prompt(text, tokens, None if answer is None else str(answer)))
    if not prompts:
        raise ValueError(f"--data_file {path} holds no prompts (it is empty or only blank lines)")
    return PromptSet(path, prompts, chat=kind == "messages")


def check_prompt_lengths(prompts: PromptSet, ctx_len: int, max_new_tokens: int) -> None:
    """Every prompt and its longest completion fit in ctx_len tokens."""
    longest = max(range(len(prompts)), key=lambda i: len(prompts.prompts[i].tokens))
    n = len(prompts.prompts[longest].tokens)
    if n + max_new_tokens > ctx_len:
        raise ValueError(f"{prompts.path}: prompt {longest + 1} has {n} tokens, which with --max_new_tokens "
                         f"{max_new_tokens} exceeds --ctx_len {ctx_len}: raise --ctx_len or lower --max_new_tokens")


def stop_tokens(prompts: PromptSet, tokenizer) -> tuple[int, ...]:
    """Where a completion ends: the end-of-document token, and for conversations the end of the turn."""
    turn_end = tokenizer.encode(END_OF_TURN)
    return (0, *turn_end) if prompts.chat and len(turn_end) == 1 else (0,)


class PromptDataset(TokenDataset):
    """One rank's prompts, numbered as TokenDataset numbers its samples (so a resumed run goes on exactly),
    visited in a seeded order pass after pass. Item j: (sample number g, prompt index)."""

    def __init__(self, prompts: PromptSet, seed: int = 0, micro_bsz: int = 1, rank: int = 0, world_size: int = 1,
                 first_batch: int = 0, num_batches: int = 0):
        self.prompts, self.seed, self.micro_bsz, self.rank, self.world_size = prompts, seed, micro_bsz, rank, world_size
        self.first_batch, self.num_batches = first_batch, num_batches

    def __getitem__(self, j: int) -> tuple[int, int]:
        g = self.sample_number(j)
        return g, document_order(self.seed, g, len(self.prompts))
