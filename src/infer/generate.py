"""Text generation with a model of any family: the prompt in one parallel pass, then one token at a time
with the state (RNN mode).

    python generate.py --model rwkv6-3b.pth --adapter out/bone --prompt "The Eiffel tower is in" --temperature 0
    python generate.py --model rwkv7-g1-1.5b.pth --chat            # User: / Assistant: turns, state kept

Stdout carries only the generated text, streamed as it comes (whole UTF-8 characters); everything
else goes to stderr. Generation stops after --max_tokens, at the end-of-document token 0, or
where --stop's text appears (not printed). --chat runs RWKV's chat template (src/data/chat.py):
each line typed is a user turn, the reply stops at the end of the assistant's turn ("\\n\\n"),
and the state carries the whole conversation. A reply that opens with a G1 model's reasoning
("<think>...</think>") is shown without it (a "[reasoning: N tokens]" note on stderr instead) unless
--show_reasoning; the state still reads all of it. --think asks for reasoning as RWKV-LM's G1 templates
do, by ending the context with "Assistant: <think".
"""

from __future__ import annotations

import argparse
import codecs
import sys
import time
from pathlib import Path
from typing import Iterator

import torch

from ..data.chat import END_OF_TURN, THINK, THINK_CLOSE, THINK_OPEN, assistant_prompt
from ..model import RWKVState
from ..peft.rwkv_peft import RWKV_PEFT_METHODS
from ..utils.cli import run_command
from ..quant.scheme import BLOCKSIZES, QUANT_TYPES, QuantScheme
from .load import load_for_inference
from .sampling import Sampler

END_OF_DOCUMENT = 0


@torch.no_grad()
def generate_tokens(model: torch.nn.Module, prompt: list[int], sampler: Sampler, max_tokens: int,
                    state: RWKVState | None = None, stop_token: int | None = END_OF_DOCUMENT,
                    done: list | None = None) -> Iterator[int]:
    """Yield up to `max_tokens` sampled tokens after `prompt` (run in one parallel pass from `state`,
    None: the model's own start), each fed back before it is yielded; stops after `stop_token`. When
    the generator ends or is closed, `done` (a list, if given) receives the state after every yielded
    token (a conversation goes on from it)."""
    device = next(model.parameters()).device
    if not prompt:
        raise ValueError("the prompt holds no tokens")
    logits, state = model(torch.tensor([prompt], device=device), state=state, return_state=True)   # (1, T, V)
    try:
        for _ in range(max_tokens):
            token = sampler(logits[0, -1])
            logits, state = model(torch.tensor([[token]], device=device), state=state, return_state=True)
            yield token
            if token == stop_token:
                break
    finally:
        if done is not None:
            done.append(state)


class TextStream:
    """Tokens in, text out: whole UTF-8 characters only (a character split across tokens waits for its
    last bytes), and nothing that might still turn into a stop text. Once a stop text appears,
    `stopped` is set and only the text before it has been given out."""

    def __init__(self, tokenizer, stops: tuple[str, ...] = ()):
        self.tokenizer, self.stops = tokenizer, tuple(s for s in stops if s)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.emitted = 0                 # characters of self.text given out
        self.stopped = False

    def push(self, token: int) -> str:
        """The new text that this token makes safe to print. Token 0 (the end of a document, and of a chat
        reply in our conversation data) ends the text: it has no bytes of its own."""
        if self.stopped or token == END_OF_DOCUMENT:
            return ""
        self.text += self.decoder.decode(self.tokenizer.decode_bytes([token]))
        return self._release(final=False)

    def flush(self) -> str:
        """The rest, once generation has ended."""
        if self.stopped:
            return ""
        self.text += self.decoder.decode(b"", final=True)
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        longest = max((len(s) for s in self.stops), default=0)
        search_from = max(0, self.emitted - longest)
        found = [at for at in (self.text.find(s, search_from) for s in self.stops) if at >= 0]
        if found:
            self.stopped = True
            end = min(found)
        elif final:
            end = len(self.text)
        else:                            # hold back a tail that is the beginning of a stop text
            end = len(self.text)
            for stop in self.stops:
                for k in range(min(len(stop) - 1, len(self.text)), 0, -1):
                    if self.text.endswith(stop[:k]):
                        end = min(end, len(self.text) - k)
                        break
        out = self.text[self.emitted:max(end, self.emitted)]
        self.emitted = max(end, self.emitted)
        return out


class ReasoningFilter:
    """A chat reply's text in, the text to show out: a reply that opens with a reasoning block
    ("<think>...</think>", after any leading whitespace) is shown without it, and without the whitespace
    between it and the answer. Text that might still open one is held back until it is clear. `prefix` is
    reply text the prompt already holds: --think's " <think" opens the reasoning whatever the model writes
    next. `opened` and `closed` say what was seen."""

    def __init__(self, prefix: str = ""):
        self.held = prefix               # text not yet shown nor dropped
        self.lead = ""                   # the whitespace before "<think>", shown before the answer
        self.opened = self.closed = self.answering = False
        body = prefix.lstrip()
        if body.startswith(THINK.strip()):                   # the prompt asked for reasoning ("Assistant: <think")
            self.opened, self.lead, self.held = True, prefix[:len(prefix) - len(body)], body[len(THINK.strip()):]

    def push(self, text: str) -> str:
        """The part of the reply so far that may be shown now."""
        if self.answering:
            return text
        self.held += text
        if not self.opened:
            body = self.held.lstrip()
            if THINK_OPEN.startswith(body):                  # nothing yet, or the beginning of "<think>"
                return ""
            if not body.startswith(THINK_OPEN):              # an answer without reasoning: show it as it is
                self.answering, shown, self.held = True, self.held, ""
                return shown
            self.opened, self.lead = True, self.held[:len(self.held) - len(body)]
            self.held = body[len(THINK_OPEN):]
        if not self.closed:
            at = self.held.find(THINK_CLOSE)
            if at < 0:                                       # keep only what may begin "</think>"
                self.held = self.held[-(len(THINK_CLOSE) - 1):]
                return ""
            self.closed, self.held = True, self.held[at + len(THINK_CLOSE):]
        answer = self.held.lstrip()
        if not answer:
            return ""
        self.answering, self.held = True, ""
        return self.lead + answer

    def flush(self) -> str:
        """What is left to show once the reply has ended: held text that never opened a reasoning."""
        shown, self.held = ("" if self.opened else self.held), ""
        return shown


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """--model, --adapter (and what an RWKV-PEFT file needs), --state, --device: shared with eval.py."""
    p.add_argument("--model", required=True, metavar="PATH",
                   help="an RWKV .pth of any family (RWKV-6, RWKV-7): a base or a merged model (required)")
    p.add_argument("--adapter", metavar="PATH",
                   help="an adapter to apply without merging the file: a directory of ours (a run's proj_dir means "
                        "its newest checkpoint) or RWKV-PEFT's .pth / proj_dir (then --method) (default: none)")
    p.add_argument("--method", choices=RWKV_PEFT_METHODS,
                   help="the method of an RWKV-PEFT adapter file, which does not record it (default: read from our "
                        "adapter_config.json)")
    p.add_argument("--lora_alpha", type=float, metavar="X", help="LoRA alpha of an RWKV-PEFT LoRA file (default: none)")
    p.add_argument("--pissa_init", metavar="PATH", help="RWKV-PEFT's init_pissa.pth for its PiSSA file (default: none)")
    p.add_argument("--state", metavar="FILE",
                   help="start from this state file (blocks.{i}.att.time_state, e.g. a state-tuning run's "
                        "state.pth) (default: zeros, or the adapter's tuned state)")
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda[:N]",
                   help="where to run: auto takes a GPU (bf16) when there is one, else the CPU (fp32) (default: auto)")
    p.add_argument("--quant", choices=("none", *QUANT_TYPES), default="none",
                   help="hold the base's linear layers quantised (bitsandbytes), as train.py --quant does; an adapter "
                        "then runs beside them unmerged: with the --quant it was trained with, the function trained "
                        "(default: none)")
    p.add_argument("--quant_blocksize", type=int, choices=BLOCKSIZES, default=64,
                   help="values per scale of nf4 / fp4 (default: 64)")
    p.add_argument("--quant_head", type=int, choices=(0, 1), default=0, help="quantise the head too (default: 0)")


def check_model_paths(args) -> None:
    """The files named exist, before anything slow is loaded."""
    for flag in ("model", "state", "pissa_init"):
        path = getattr(args, flag)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"--{flag} {path} does not exist" + (" (it is a directory: give the file)"
                                                                          if Path(path).is_dir() else ""))
    if args.adapter is not None and not Path(args.adapter).exists():
        raise FileNotFoundError(f"--adapter {args.adapter} does not exist")


def quant_from_args(args) -> QuantScheme | None:
    if args.quant == "none":
        return None
    return QuantScheme(args.quant, blocksize=args.quant_blocksize, head=bool(args.quant_head))


def load_from_args(args) -> tuple[torch.nn.Module, RWKVState | None]:
    return load_for_inference(args.model, adapter=args.adapter, state=args.state, device=args.device,
                              method=args.method, lora_alpha=args.lora_alpha, pissa_init=args.pissa_init,
                              quant=quant_from_args(args))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="generate.py", description=__doc__.split("\n\n")[0])
    add_model_flags(p)
    p.add_argument("--prompt", metavar="TEXT", help="the text to continue (required unless --chat; with --chat, the "
                                                    "first user message) (default: none)")
    p.add_argument("--max_tokens", type=int, default=200, metavar="N",
                   help="most tokens to generate (per reply with --chat) (default: 200)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="sampling temperature; 0: greedy, always the most probable token (default: 1.0)")
    p.add_argument("--top_p", type=float, default=0.85, metavar="P",
                   help="sample among the most probable tokens whose probability reaches P (default: 0.85)")
    p.add_argument("--top_k", type=int, default=0, metavar="K",
                   help="sample among the K most probable tokens; 0: no limit (default: 0)")
    p.add_argument("--seed", type=int, metavar="N", help="seed of the sampling, for reproducible output (default: "
                                                         "a fresh seed each run)")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="stop where this text appears (not printed); may be given several times (default: none; "
                        "--chat always stops at the end of the assistant's turn, a blank line)")
    p.add_argument("--chat", action="store_true",
                   help="talk: each stdin line is a user turn in RWKV's chat template (User: ... Assistant:), the "
                        "state keeps the conversation (default: off)")
    p.add_argument("--system", metavar="TEXT", help="with --chat, a system message before the first turn "
                                                    "(default: none)")
    p.add_argument("--think", action="store_true",
                   help="with --chat, ask a G1 model to reason before each reply: the context ends with "
                        "\"Assistant: <think\", RWKV-LM's think mode (default: off)")
    p.add_argument("--show_reasoning", action="store_true",
                   help="with --chat, print a reply's <think>...</think> reasoning too (default: hidden, a "
                        "\"[reasoning: N tokens]\" note on stderr instead)")
    return p


def check_text(text: str | None, where: str) -> None:
    """Text the tokenizer can take: bytes that were not UTF-8 (Python keeps them as lone surrogates) are
    refused, naming where they came from."""
    if text is None:
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{where} holds bytes that are not UTF-8 text (at character {e.start}): give UTF-8") \
            from None


def main(argv: list[str] | None = None, tokenizer=None) -> int:
    """`tokenizer`: a WorldTokenizer to reuse (tests); one is built otherwise."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        if not args.chat and args.prompt is None:
            raise ValueError("--prompt TEXT is required (or --chat to talk)")
        if args.max_tokens < 1:
            raise ValueError(f"--max_tokens must be positive, got {args.max_tokens}")
        if args.system is not None and not args.chat:
            raise ValueError("--system is for --chat")
        for flag in ("think", "show_reasoning"):
            if getattr(args, flag) and not args.chat:
                raise ValueError(f"--{flag} is for --chat")
        for flag, values in (("--prompt", [args.prompt]), ("--system", [args.system]), ("--stop", args.stop)):
            for value in values:
                check_text(value, flag)
        sampler = Sampler(args.temperature, args.top_p, args.top_k, args.seed)
        check_model_paths(args)
        from ..data.tokenizer import WorldTokenizer
        model, state = load_from_args(args)
        words = tokenizer or WorldTokenizer()
        print(f"generate.py: {args.model}" + (f" + {args.adapter}" if args.adapter else "")
              + (f", state {args.state}" if args.state else "") + f" on {next(model.parameters()).device}",
              file=sys.stderr, flush=True)
        if not args.chat:
            reply(model, words, words.encode(args.prompt), sampler, args.max_tokens, state, tuple(args.stop))
            return 0
        return chat(model, words, sampler, args, state)

    return run_command("generate.py", body, interrupted="stopped")


def reply(model, tokenizer, prompt: list[int], sampler: Sampler, max_tokens: int, state: RWKVState | None,
          stops: tuple[str, ...], out=None, hide_reasoning: bool = False, prefix: str = "") -> tuple[RWKVState, bool]:
    """Generate after `prompt`, streaming the text to `out` (stdout); returns (the state after it, whether
    a stop text ended it). `prefix`: the reply's text that `prompt` already ends with (printed first);
    `hide_reasoning`: print the reply without its opening <think>...</think>, noting its length on stderr."""
    out = out or sys.stdout
    stream, done = TextStream(tokenizer, stops), []
    hidden = ReasoningFilter(prefix) if hide_reasoning else None
    if prefix and hidden is None:
        out.write(prefix)
    start, count, noted = time.time(), 0, False
    tokens = generate_tokens(model, prompt, sampler, max_tokens, state, done=done)
    for token in tokens:
        count += 1
        piece = stream.push(token)
        if hidden is not None:
            piece = hidden.push(piece)
            if hidden.closed and not noted:
                print(f" [reasoning: {count} tokens]", end="", file=sys.stderr, flush=True)
                noted = True
        if piece:
            out.write(piece)
            out.flush()
        if stream.stopped:
            break
    tokens.close()
    rest = stream.flush()
    if hidden is not None:
        rest = hidden.push(rest) + hidden.flush()
        if hidden.opened and not noted:
            print(f" [reasoning: {count} tokens{'' if hidden.closed else ', unfinished'}]", end="", file=sys.stderr,
                  flush=True)
    out.write(rest)
    out.flush()
    seconds = time.time() - start
    print(f"\n[{len(prompt)} prompt tokens, {count} generated in {seconds:.1f}s, {count / max(seconds, 1e-9):.1f} "
          f"tokens/s]", file=sys.stderr, flush=True)
    return done[0], stream.stopped


def chat(model, tokenizer, sampler: Sampler, args, state: RWKVState | None) -> int:
    """RWKV's chat template turn by turn; the state carries the conversation."""
    first, ended_turn, system = True, True, args.system
    pending = args.prompt
    while True:
        if pending is None:
            print("User: ", end="", file=sys.stderr, flush=True)
            try:
                line = sys.stdin.readline() if sys.stdin is not None else ""  # stdin closed: the end
            except UnicodeDecodeError as e:
                print(file=sys.stderr)                  # end the "User: " line
                raise ValueError(f"stdin: a line holds bytes that are not UTF-8 text ({e.reason}): give UTF-8") \
                    from None
            check_text(line, "stdin")
            if not line:
                print(file=sys.stderr)
                return 0
            pending = line.rstrip("\n")
        if not pending.strip():
            pending = None
            continue
        text = assistant_prompt(pending, system if first else None)
        if not ended_turn:
            text = END_OF_TURN + text                 # the last reply ended without its blank line
        prefix = THINK if args.think else ""          # the reply then begins in the context: " <think"
        print("Assistant:", end="", file=sys.stderr, flush=True)
        state, ended_turn = reply(model, tokenizer, tokenizer.encode(text + prefix), sampler, args.max_tokens,
                                  state, (END_OF_TURN,), hide_reasoning=not args.show_reasoning, prefix=prefix)
        sys.stdout.write("\n")
        sys.stdout.flush()
        first, pending = False, None
