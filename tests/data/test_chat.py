"""src/data/chat.py: RWKV's chat template, and conversation data whose loss is on the assistant's turns."""

import json

from src.data import BinIdx, TokenDataset
from src.data.chat import assistant_prompt, conversation_segments
from src.data.make_data import make_data
from src.utils.paths import SAMPLE_DATA


def test_the_template():
    messages = [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi\r\n\r\n\r\nthere"},
                {"role": "assistant", "content": "Hello.\n\nHow can I help?"}, {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"}]
    segments = conversation_segments(messages)
    assert segments == [("System: Be brief.\n\nUser: Hi\nthere\n\nAssistant:", False),
                        (" Hello.\nHow can I help?\n\n", True),           # "\n\n" inside a turn collapses
                        ("User: 2+2?\n\nAssistant:", False), (" 4", True)]
    assert "".join(t for t, _ in segments) == ("System: Be brief.\n\nUser: Hi\nthere\n\nAssistant: Hello.\nHow can I "
                                               "help?\n\nUser: 2+2?\n\nAssistant: 4")
    # generate.py --chat sends the same context
    assert assistant_prompt("Hi\n\nthere", system="Be brief.") == segments[0][0]
    assert assistant_prompt("2+2?") == segments[2][0]


def test_conversation_data_counts_the_assistants_tokens_only(tmp_path, world_tokenizer):
    """make_data on data/sample-chat.jsonl, read as sft: the counted targets are exactly the assistant's
    replies with their ends of turn (and the end-of-document token), the context is everything else."""
    stats = make_data(SAMPLE_DATA / "sample-chat.jsonl", tmp_path / "chat", tokenizer=world_tokenizer)
    assert stats["kind"] == "chat" and stats["documents"] == 12
    records = [json.loads(line) for line in (SAMPLE_DATA / "sample-chat.jsonl").read_text().splitlines()]
    ds = TokenDataset(BinIdx(tmp_path / "chat"), "sft", ctx_len=512, seed=0)
    for g in range(12):
        doc = ds._document_order(g)
        x, y, mask = ds.sample(g)
        segments = conversation_segments(records[doc]["messages"])
        replies = "".join(text for text, is_reply in segments if is_reply)
        counted = [int(t) for t in y[mask.bool()]]
        assert counted[-1] == 0 and world_tokenizer.decode(counted[:-1]) == replies
        context = [int(t) for t in x[: int(mask.nonzero()[-1]) + 1]][: len(x)]
        assert world_tokenizer.decode(context).startswith(segments[0][0])
    multi = next(g for g in range(12) if len(records[ds._document_order(g)]["messages"]) > 3)
    _, y, mask = ds.sample(multi)
    assert "User:" in world_tokenizer.decode([int(t) for t in y[~mask.bool()] if t != 0])


def test_prompt_response_data_still_counts_the_response():
    from src.data.binidx import BinIdxWriter
    import tempfile, pathlib
    with tempfile.TemporaryDirectory() as d:
        prefix = pathlib.Path(d) / "s"
        with BinIdxWriter(prefix) as w:
            w.add_document([[5, 6, 7], [8, 9, 0]])
        x, y, mask = TokenDataset(BinIdx(prefix), "sft", ctx_len=8).sample(0)
        assert x.tolist() == [5, 6, 7, 8, 9, 0, 0, 0] and mask.tolist() == [0, 0, 1, 1, 1, 0, 0, 0]
