"""Preference pairs: make_data writes {prompt|messages, chosen, rejected} records as three-item documents, the
pair samples mask exactly the responses, and bad records or data are one-line errors naming where."""

from __future__ import annotations

import json

import pytest
import torch

from src.data import BinIdx, TokenDataset
from src.data.chat import assistant_reply, conversation_prompt
from src.data.make_data import make_data
from src.data.pairs import PairDataset, check_pairs, pair_sample


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]


def test_prompt_and_conversation_pairs_become_three_items(tmp_path, world_tokenizer):
    tok = world_tokenizer
    src = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "Q: 2+2?\nA:", "chosen": " 4", "rejected": " 5"},
        {"messages": MESSAGES, "chosen": {"role": "assistant", "content": "4", "reasoning": "two and two"},
         "rejected": {"content": "5"}}])
    stats = make_data(src, tmp_path / "p", tok)
    assert stats["kind"] == "pairs" and stats["documents"] == 2
    data = BinIdx(tmp_path / "p")
    first = [item.tolist() for item in data.document_items(0)]
    assert first == [tok.encode("Q: 2+2?\nA:"), tok.encode(" 4") + [0], tok.encode(" 5") + [0]]
    context, chosen, rejected = [item.tolist() for item in data.document_items(1)]
    assert context == tok.encode(conversation_prompt(MESSAGES))
    assert tok.decode(context).endswith("User: What is 2+2?\n\nAssistant:")
    reply = "".join(t for t, _ in assistant_reply({"role": "assistant", "content": "4", "reasoning": "two and two"}))
    assert chosen == tok.encode(reply) + [0] and "<think>" in reply
    assert rejected == tok.encode(" 5") + [0]


def test_a_pair_sample_masks_the_responses_only(tmp_path, world_tokenizer):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "one two three", "chosen": " four five", "rejected": " six"}])
    make_data(src, tmp_path / "p", world_tokenizer)
    data = BinIdx(tmp_path / "p")
    context, chosen, rejected = (item.tolist() for item in data.document_items(0))
    ctx_len = len(context) + len(chosen) + 3
    x, y, mask = pair_sample(data, 0, ctx_len)
    assert x.shape == y.shape == mask.shape == (2, ctx_len)
    for row, response in enumerate((chosen, rejected)):
        sequence = context + response
        n = len(sequence) - 1
        assert x[row, :n].tolist() == sequence[:-1] and y[row, :n].tolist() == sequence[1:]
        counted = [t for t, m in zip(y[row].tolist(), mask[row].tolist()) if m]
        assert counted == response                       # the response's tokens, its final 0 included
    short = pair_sample(data, 0, len(context))[2]        # cut: one response token left in each row
    assert short.sum(1).tolist() == [1.0, 1.0]
    items = PairDataset(data, ctx_len, micro_bsz=2, num_batches=1)
    assert len(items) == 2 and all(torch.equal(a, b) for a, b in zip(items[0][:3], (x, y, mask)))
    assert items[0][3] == 0


@pytest.mark.parametrize("record, message", [
    ({"prompt": "p", "chosen": "a"}, "'rejected' is missing"),
    ({"prompt": "p", "messages": MESSAGES, "chosen": "a", "rejected": "b"}, "mixes the fields"),
    ({"chosen": "a", "rejected": "b"}, "exactly one of them"),
    ({"prompt": "p", "chosen": "a", "rejected": "b", "score": 1}, "unknown field 'score'"),
    ({"prompt": "p", "chosen": 3, "rejected": "b"}, "'chosen' must be a string"),
    ({"prompt": "p", "chosen": "", "rejected": "b"}, "empty 'chosen'"),
    ({"messages": MESSAGES, "chosen": "4", "rejected": {"content": "5"}}, "'chosen' must be an assistant message"),
    ({"messages": MESSAGES, "chosen": {"role": "user", "content": "4"}, "rejected": {"content": "5"}},
     "must be an assistant message"),
    ({"messages": MESSAGES + [{"role": "assistant", "content": "x"}], "chosen": {"content": "4"},
      "rejected": {"content": "5"}}, "p.jsonl:1"),
])
def test_bad_pairs_name_the_file_and_line_and_write_nothing(tmp_path, world_tokenizer, record, message):
    src = write_jsonl(tmp_path / "p.jsonl", [record])
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as e:
        make_data(src, tmp_path / "p", world_tokenizer)
    assert "p.jsonl:1" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "p.bin").exists() and not (tmp_path / "p.idx").exists()


def test_pairs_and_sft_data_are_told_apart(tmp_path, world_tokenizer):
    make_data(write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a b c d e f", "chosen": " x", "rejected": " y"}]),
              tmp_path / "p", world_tokenizer)
    make_data(write_jsonl(tmp_path / "s.jsonl", [{"prompt": "a", "response": " b"}]), tmp_path / "s", world_tokenizer)
    with pytest.raises(ValueError, match="not preference pairs"):
        check_pairs(BinIdx(tmp_path / "s"), 16)
    with pytest.raises(ValueError, match="sft needs context and response items in pairs"):
        TokenDataset(BinIdx(tmp_path / "p"), "sft", 16)
    n = len(BinIdx(tmp_path / "p").document_items(0)[0])
    with pytest.raises(ValueError, match=f"pair 0 has a context of {n} tokens, at least ctx_len = {n}"):
        check_pairs(BinIdx(tmp_path / "p"), n)
    check_pairs(BinIdx(tmp_path / "p"), n + 1)


def test_the_sample_pairs_convert(tmp_path, world_tokenizer):
    from src.utils.paths import SAMPLE_DATA
    stats = make_data(SAMPLE_DATA / "sample-pairs.jsonl", tmp_path / "p", world_tokenizer)
    assert stats["kind"] == "pairs" and stats["documents"] == 6
    check_pairs(BinIdx(tmp_path / "p"), 64)
