"""Reward functions for GRPO: built-in ones, a user's own, and scoring completions with several.

    rewards = [parse_reward("exact"), parse_reward("format=0.5"), parse_reward("mypkg.rewards:brevity=0.1")]
    scores = score(rewards, prompts, completions, answers)      # (N, R) float64, each reward's raw value
    total = weighted_total(scores, rewards)                     # (N,): sum of weight x value

A reward is a function (prompt: str, completion: str, answer: str | None) -> float. `--reward` specs
are NAME[=WEIGHT] (weight 1.0 by default), NAME one of:

    exact          1.0 if the completion's final answer equals `answer`, else 0.0 (final_answer,
                   answers_match below); a sample without an answer is an error
    format         1.0 if the whole completion matches a regular expression (re.fullmatch, DOTALL), else
                   0.0; by default a G1 reasoning reply: one <think>...</think>, then a non-empty answer
    length         1.0 for a completion of at most `target` characters, falling linearly to 0.0 at twice
                   the target and beyond: max(0, min(1, (2 * target - n) / target)) for n characters
    module:function  a user's function, `function` imported from `module` (a dotted path), the current
                   directory on the search path while it is imported, so mypkg/rewards.py next to the command works

A user's function that raises, or returns something other than a finite number, stops scoring with a
RewardError naming the reward, the sample and the value.
"""

from __future__ import annotations

import functools
import importlib
import math
import numbers
import os
import re
import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Callable

import torch

RewardFn = Callable[[str, str, "str | None"], float]

BUILTIN_REWARDS = ("exact", "format", "length")
# a G1 reasoning reply: one <think>...</think> (may be empty), then a non-empty answer holding no think tag
G1_REPLY = r"\s*<think>(?:(?!</?think>).)*</think>\s*(?!</?think>)\S(?:(?!</?think>).)*"
G1_PATTERN = re.compile(G1_REPLY, re.DOTALL)
DEFAULT_LENGTH_TARGET = 1000            # characters

# "Answer:", "the answer is", "####" (GSM8K); the final answer is the first non-empty line after the last one
ANSWER_MARKER = re.compile(r"answer\s*:|answer\s+is\b\s*:?|####", re.IGNORECASE)
BOXED = "\\boxed{"
# 1,234,567.89 / 1234.5 / -3 / .5; not inside a word ("H2O") and not the digits after a decimal point
NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d|,\d)|\d+)(?:\.\d+)?|(?<![\w.])-?\.\d+")
PLAIN_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?")


# ------------------------------------------------------------------ extracting the final answer

def reply_part(completion: str) -> str | None:
    """The text after the reasoning: after the last </think> if there is one; None when a <think> is never
    closed (the completion ended while reasoning: it holds no answer); else the whole completion."""
    if "</think>" in completion:
        return completion.rsplit("</think>", 1)[1]
    return None if "<think>" in completion else completion


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...}, its braces balanced ("\\boxed{\\frac{1}{2}}" -> "\\frac{1}{2}");
    None if there is none or it is never closed."""
    start = text.rfind(BOXED)
    if start < 0:
        return None
    depth, begin = 1, start + len(BOXED)
    for at in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[at], 0)
        if depth == 0:
            return text[begin:at]
    return None


def last_number(text: str) -> str | None:
    found = NUMBER.findall(text)
    return found[-1] if found else None


def final_answer(completion: str) -> str | None:
    """The completion's final answer, by the first rule that finds one (only the text after a
    <think>...</think> is read): the first non-empty line after the last answer marker ("Answer:",
    "answer is", "####", any case; a \\boxed{} on that line gives its content), else the content of the
    last \\boxed{...}, else the last number. None when there is none."""
    text = reply_part(completion)
    if text is None:
        return None
    markers = list(ANSWER_MARKER.finditer(text))
    if markers:
        line = next((line.strip() for line in text[markers[-1].end():].splitlines() if line.strip()), "")
        if line:
            return last_boxed(line) or line
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed
    return last_number(text)


def normalise(text: str) -> str:
    """Whitespace, a trailing period, and surrounding $...$ or quotes stripped (repeatedly: '"$5$."' -> '5');
    inner whitespace collapsed to one space."""
    before = None
    while text != before:
        before = text
        text = text.strip().removesuffix(".").strip()
        for left, right in (("$", "$"), ('"', '"'), ("'", "'"), ("`", "`"), ("\u201c", "\u201d")):
            if len(text) >= 2 and text.startswith(left) and text.endswith(right):
                text = text[len(left):-len(right)]
    return " ".join(text.split())


def as_number(text: str) -> Decimal | None:
    """'1,234' -> 1234, '-3.0' -> -3.0, '$5' -> 5 (after normalise); None for anything else."""
    text = normalise(text).removeprefix("$").strip()
    if not text or not PLAIN_NUMBER.fullmatch(text) or not any(c.isdigit() for c in text):
        return None
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def answers_match(extracted: str | None, answer: str) -> bool:
    """Equal after normalise, case-insensitively; numbers compare as numbers ("3.0" == "3", "1,234" ==
    "1234"). When the answer is a number and the extracted text is not ("42 apples"), its last number counts."""
    if extracted is None:
        return False
    expected = as_number(answer)
    if expected is not None:
        got = as_number(extracted)
        if got is None:
            number = last_number(normalise(extracted))
            got = as_number(number) if number is not None else None
        return got is not None and got == expected
    return normalise(extracted).casefold() == normalise(answer).casefold()


# ------------------------------------------------------------------ the built-in rewards

def exact(prompt: str, completion: str, answer: str | None) -> float:
    """1.0 if the completion's final answer (final_answer) equals `answer` (answers_match), else 0.0."""
    if answer is None:
        raise ValueError("the sample has no answer to compare with (give answers, or leave out the exact reward)")
    return 1.0 if answers_match(final_answer(completion), answer) else 0.0


def matches_format(prompt: str, completion: str, answer: str | None, pattern: re.Pattern = G1_PATTERN) -> float:
    """1.0 if the whole completion matches `pattern` (re.fullmatch), else 0.0."""
    return 1.0 if pattern.fullmatch(completion) else 0.0


def length_within(prompt: str, completion: str, answer: str | None, target: int = DEFAULT_LENGTH_TARGET) -> float:
    """1.0 at or under `target` characters, linearly down to 0.0 at 2 * target, 0.0 beyond."""
    return max(0.0, min(1.0, (2 * target - len(completion)) / target))


# ------------------------------------------------------------------ --reward specs

@dataclass
class Reward:
    """One --reward: its name (a built-in's, or "module:function"), the function, and its weight."""

    name: str
    fn: RewardFn
    weight: float = 1.0


def import_function(spec: str, name: str) -> RewardFn:
    """`function` from "module.path:function", the current directory searched first (sys.path is put back
    afterwards). A problem is a ValueError naming --reward and the spec."""
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute or ":" in attribute:
        raise ValueError(f"--reward {spec}: expected a built-in ({', '.join(BUILTIN_REWARDS)}) or "
                         f"module.path:function")
    here = os.getcwd()
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except Exception as e:                           # not found, or the module itself fails to import
        detail = " ".join(str(e).split())
        raise ValueError(f"--reward {spec}: cannot import {module_name} ({type(e).__name__}: {detail})") from None
    finally:
        if added:
            sys.path.remove(here)
    fn = getattr(module, attribute, None)
    if fn is None:
        raise ValueError(f"--reward {spec}: {module_name} has no {attribute}")
    if not callable(fn):
        raise ValueError(f"--reward {spec}: {module_name}.{attribute} is a {type(fn).__name__}, not a function")
    return fn


def parse_reward(spec: str, format_regex: str | None = None,
                 length_target: int = DEFAULT_LENGTH_TARGET) -> Reward:
    """A --reward spec NAME[=WEIGHT] -> Reward. `format_regex`: the format reward's pattern (None: G1_REPLY);
    `length_target`: the length reward's target in characters. A bad spec is a one-line ValueError."""
    name, has_weight, weight_text = spec.partition("=")
    name = name.strip()
    weight = 1.0
    if has_weight:
        try:
            weight = float(weight_text)
        except ValueError:
            raise ValueError(f"--reward {spec}: the weight must be a number, got {weight_text!r}") from None
        if not math.isfinite(weight):
            raise ValueError(f"--reward {spec}: the weight must be finite, got {weight_text!r}")
    if name == "exact":
        fn = exact
    elif name == "format":
        regex = G1_REPLY if format_regex is None else format_regex
        try:
            pattern = re.compile(regex, re.DOTALL)
        except re.error as e:
            raise ValueError(f"--reward {spec}: the format regex {regex!r} is not a regular expression ({e})") \
                from None
        fn = functools.partial(matches_format, pattern=pattern)
    elif name == "length":
        if isinstance(length_target, bool) or not isinstance(length_target, int) or length_target < 1:
            raise ValueError(f"--reward {spec}: the length target must be a whole number of characters >= 1, got "
                             f"{length_target!r}")
        fn = functools.partial(length_within, target=length_target)
    elif ":" in name:
        fn = import_function(spec, name)
    else:
        raise ValueError(f"--reward {spec}: unknown reward {name!r}; expected one of {', '.join(BUILTIN_REWARDS)} "
                         f"or module.path:function")
    return Reward(name, fn, weight)


# ------------------------------------------------------------------ scoring

class RewardError(ValueError):
    """A reward function raised, or returned something other than a finite number."""


def short(text: str, limit: int = 60) -> str:
    """A completion in a message: its repr, cut to `limit` characters."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def score(rewards: list[Reward], prompts: list[str], completions: list[str],
          answers: list[str | None]) -> torch.Tensor:
    """(N, R) float64: column r holds rewards[r]'s raw value for each completion (weights not applied)."""
    N = len(completions)
    if len(prompts) != N or len(answers) != N:
        raise ValueError(f"score: {len(prompts)} prompts, {N} completions and {len(answers)} answers; expected one "
                         f"of each per sample")
    out = torch.zeros(N, len(rewards), dtype=torch.float64)
    for r, reward in enumerate(rewards):
        for i, (prompt, completion, answer) in enumerate(zip(prompts, completions, answers)):
            where = f"reward {reward.name} on sample {i} ({short(completion)})"
            try:
                value = reward.fn(prompt, completion, answer)
            except Exception as e:
                detail = " ".join(str(e).split())
                raise RewardError(f"{where} raised {type(e).__name__}: {detail}") from e
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise RewardError(f"{where} returned {repr(value)[:40]}, not a finite number")
            out[i, r] = float(value)
    return out


def weighted_total(scores: torch.Tensor, rewards: list[Reward]) -> torch.Tensor:
    """scores (N, R) -> (N,): each sample's sum of weight x value."""
    if scores.dim() != 2 or scores.shape[1] != len(rewards):
        raise ValueError(f"weighted_total: scores of shape {tuple(scores.shape)} for {len(rewards)} rewards")
    return scores @ torch.tensor([r.weight for r in rewards], dtype=scores.dtype, device=scores.device)
