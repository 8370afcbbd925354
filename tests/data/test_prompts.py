"""GRPO's prompt files: read whole, tokenised, checked line by line; conversations end replies at the turn's end."""

from __future__ import annotations

import json

import pytest

from src.data.chat import conversation_prompt
from src.data.prompts import PromptDataset, check_prompt_lengths, read_prompts, stop_tokens


def write(path, lines):
    path.write_text("".join((json.dumps(r) if not isinstance(r, str) else r) + "\n" for r in lines))
    return path


def test_prompts_and_conversations(tmp_path, world_tokenizer):
    tok = world_tokenizer
    plain = read_prompts(write(tmp_path / "a.jsonl", [{"prompt": "1+1=", "answer": 2}, {"prompt": "x"}]), tok)
    assert [p.text for p in plain.prompts] == ["1+1=", "x"] and [p.answer for p in plain.prompts] == ["2", None]
    assert plain.prompts[0].tokens == tuple(tok.encode("1+1=")) and not plain.chat
    assert stop_tokens(plain, tok) == (0,)
    messages = [{"role": "user", "content": "What is 1+1?"}]
    chat = read_prompts(write(tmp_path / "b.jsonl", [{"messages": messages, "answer": "2"}]), tok)
    assert chat.prompts[0].text == conversation_prompt(messages) and chat.chat
    assert stop_tokens(chat, tok) == (0, *tok.encode("\n\n"))


@pytest.mark.parametrize("line, message", [
    ("{", "b.jsonl:2: not valid JSON"),
    ({"text": "x"}, "b.jsonl:2: expected"),
    ({"prompt": "x", "messages": []}, "b.jsonl:2: expected"),
    ({"prompt": "", "answer": "1"}, "non-empty string"),
    ({"prompt": "x", "answer": [1]}, "\"answer\" must be a string or a number"),
    ({"prompt": "x", "answer": True}, "\"answer\" must be a string or a number"),
    ({"prompt": "x", "hint": "y"}, "unknown field 'hint'"),
    ({"messages": [{"role": "user", "content": "q"}]}, "a messages record in a file of prompt records"),
])
def test_bad_lines_are_named(tmp_path, world_tokenizer, line, message):
    path = write(tmp_path / "b.jsonl", [{"prompt": "ok"}, line])
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        read_prompts(path, world_tokenizer)


def test_missing_empty_and_too_long(tmp_path, world_tokenizer):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_prompts(tmp_path / "none.jsonl", world_tokenizer)
    with pytest.raises(ValueError, match="holds no prompts"):
        read_prompts(write(tmp_path / "e.jsonl", ["", "  "]), world_tokenizer)
    prompts = read_prompts(write(tmp_path / "l.jsonl", [{"prompt": "a"}, {"prompt": "one two three four"}]),
                           world_tokenizer)
    n = len(prompts.prompts[1].tokens)
    check_prompt_lengths(prompts, n + 8, 8)
    with pytest.raises(ValueError, match=f"prompt 2 has {n} tokens, which with --max_new_tokens 8 exceeds --ctx_len"):
        check_prompt_lengths(prompts, n + 7, 8)


def test_the_order_depends_on_the_sample_number_alone(tmp_path, world_tokenizer):
    prompts = read_prompts(write(tmp_path / "a.jsonl", [{"prompt": str(i)} for i in range(5)]), world_tokenizer)
    whole = PromptDataset(prompts, seed=1, micro_bsz=2, num_batches=10)
    resumed = PromptDataset(prompts, seed=1, micro_bsz=2, first_batch=4, num_batches=6)
    assert [whole[j] for j in range(8, 20)] == [resumed[j] for j in range(12)]
    assert sorted(i for _, i in (whole[j] for j in range(5))) == list(range(5))     # each prompt once a pass


def test_the_sample_prompts_read(world_tokenizer):
    from src.utils.paths import SAMPLE_DATA
    prompts = read_prompts(SAMPLE_DATA / "sample-prompts.jsonl", world_tokenizer)
    assert len(prompts) == 6 and prompts.prompts[2].answer == "42" and not prompts.chat
