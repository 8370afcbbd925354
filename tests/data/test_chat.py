"""src/data/chat.py: RWKV's chat template, and conversation data whose loss is on the assistant's turns."""

import json

import pytest

from src.data import BinIdx, TokenDataset
from src.data.chat import (THINK, assistant_prompt, assistant_reply, conversation_prompt, conversation_segments,
                           split_reasoning)
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


# RWKV-LM's G1 templates, written out literally as RWKV-LM documents them: RWKV-v7/RWKV7-G1x-templates.txt,
# https://github.com/BlinkDL/RWKV-LM/blob/main/RWKV-v7/RWKV7-G1x-templates.txt ("xxx" is the file's own
# placeholder for a turn's text).
G1_BASIC = "User: xxx\n\nAssistant:"
G1_HISTORY = "System: xxx\n\nUser: xxx\n\nAssistant: xxx\n\nUser: xxx\n\nAssistant:"
G1_THINK = "User: xxx\n\nAssistant: <think"                                # "Think mode"
G1_FAKE_THINK = "User: xxx\n\nAssistant: <think>\n</think"                 # "fake thinking", an empty reasoning
G1_FAKE_THINK_TIGHT = "Assistant: <think></think"                          # the file's other fake-thinking form
G1_THINK_A_BIT = "User: xxx (think a bit)\n\nAssistant: <think"            # "Control think length"
# A trained reply's reasoning block, from the first version of the same file (commit b562542, a reply in
# its "### Assistant" tool-call format): it opens "<think>\n", closes "\n</think>\n", then the answer.
G1_TRAINED_OPEN = "<think>\nOkay, the user wants to check if the API recognizes"
G1_TRAINED_CLOSE = " I'll proceed with the call.\n</think>\n**Tool Call:**"

USER = {"role": "user", "content": "xxx"}


def thinking(reasoning, content="xxx"):
    return {"role": "assistant", "content": content, "reasoning": reasoning}


def test_the_g1_templates_token_by_token(world_tokenizer):
    """Our template, tokenised, against RWKV-LM's documented G1 texts tokenised: the same tokens."""
    tok = world_tokenizer.encode
    assert tok(conversation_prompt([USER])) == tok(G1_BASIC)
    assert tok(conversation_prompt([{"role": "system", "content": "xxx"}, USER, {"role": "assistant", "content": "xxx"},
                                    USER])) == tok(G1_HISTORY)
    assert tok(conversation_prompt([USER]) + THINK) == tok(G1_THINK)
    assert tok(conversation_prompt([{"role": "user", "content": "xxx (think a bit)"}]) + THINK) == tok(G1_THINK_A_BIT)
    # a reply with reasoning continues the think-mode prompt token for token: what the model reads and writes
    written = "".join(t for t, _ in conversation_segments([USER, thinking("Two plus two.", "4")]))
    assert written == "User: xxx\n\nAssistant: <think>\nTwo plus two.\n</think>\n4"
    assert tok(written)[:len(tok(G1_THINK))] == tok(G1_THINK)
    # an empty reasoning is the documented fake thinking, however it is given
    for reply in (thinking(""), thinking(" \n\n "), {"role": "assistant", "content": "<think>\n</think>\nxxx"},
                  {"role": "assistant", "content": "<think></think>xxx"}):
        written = "".join(t for t, _ in conversation_segments([USER, reply]))
        assert written == "User: xxx\n\nAssistant: <think>\n</think>\nxxx"
        assert tok(written)[:len(tok(G1_FAKE_THINK))] == tok(G1_FAKE_THINK)
    assert split_reasoning(G1_FAKE_THINK_TIGHT.removeprefix("Assistant:") + ">xxx") == ("", "xxx")
    # the trained reasoning block: "<think>\n" + reasoning + "\n</think>\n" + answer
    reasoning = "Okay, the user wants to check if the API recognizes the teams, so I'll proceed with the call."
    (reply, _), = assistant_reply(thinking(reasoning, "**Tool Call:**"))
    assert reply.startswith(" " + G1_TRAINED_OPEN) and reply.endswith(G1_TRAINED_CLOSE)
    n = len(tok(G1_TRAINED_OPEN))          # "<" is one token with the space before it (" <"), as in G1_THINK
    assert tok(reply)[0] == tok(" <")[0] and tok(reply)[1:n] == tok(G1_TRAINED_OPEN)[1:]
    assert tok(reply)[-len(tok(G1_TRAINED_CLOSE)):] == tok(G1_TRAINED_CLOSE)


def test_reasoning_fields_and_the_segments_of_each_loss_setting():
    history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
               {"role": "assistant", "content": "4", "reasoning_content": "Two\n\n\nand two."},
               {"role": "user", "content": "And 3+3?"}]
    final = {"role": "assistant", "content": "<think>\nThree and three.\n</think>\n\n6"}
    with_loss = conversation_segments(history + [final])
    assert with_loss == [("System: Be brief.\n\nUser: 2+2?\n\nAssistant:", False),
                         (" <think>\nTwo\nand two.\n</think>\n4\n\n", True),
                         ("User: And 3+3?\n\nAssistant:", False), (" <think>\nThree and three.\n</think>\n6", True)]
    without = conversation_segments(history + [final], loss_on_reasoning=False)
    assert without == [("System: Be brief.\n\nUser: 2+2?\n\nAssistant: <think>\nTwo\nand two.\n</think>\n", False),
                       ("4\n\n", True),
                       ("User: And 3+3?\n\nAssistant: <think>\nThree and three.\n</think>\n", False), ("6", True)]
    assert "".join(t for t, _ in with_loss) == "".join(t for t, _ in without)
    # a reasoning without an answer: the answer item is empty text, the end of its turn or document follows
    assert conversation_segments([USER, thinking("Hmm.", "")], loss_on_reasoning=False) == [
        ("User: xxx\n\nAssistant: <think>\nHmm.\n</think>", False), ("", True)]


@pytest.mark.parametrize("loss_on_reasoning", [True, False])
@pytest.mark.parametrize("messages, reply", [
    ([USER], {"role": "assistant", "content": "Hello.\n\nHi."}),
    ([USER], thinking("Greet back.", "Hello.")),
    ([{"role": "system", "content": "Be brief."}, USER, thinking("a", "b"), USER, {"role": "assistant", "content": "c"},
      {"role": "user", "content": "Again?"}], {"content": "<think>Yes.</think> Again."}),
    ([USER, {"role": "assistant", "content": "<think>\n</think>\nx"}, USER], thinking("", "")),
])
def test_prompt_plus_reply_is_the_conversation(messages, reply, loss_on_reasoning):
    """What preference data writes (a context, then a reply) is what conversation data writes for the same turns."""
    parts = assistant_reply(reply, loss_on_reasoning=loss_on_reasoning)
    assert parts[-1][1] and all(not loss for _, loss in parts[:-1]) and parts[0][0].startswith(" ")
    segments = conversation_segments(messages + [{"role": "assistant", **reply}], loss_on_reasoning=loss_on_reasoning)
    assert conversation_prompt(messages) + "".join(t for t, _ in parts) == "".join(t for t, _ in segments)
    assert segments[-len(parts):][-1] == parts[-1]
    reasoning = reply.get("reasoning")
    if reasoning is not None or reply["content"].startswith("<think>"):
        assert len(parts) == (1 if loss_on_reasoning else 2)


def test_split_reasoning():
    assert split_reasoning(" <think>\nTwo plus two.\n</think>\n4\n\n") == ("Two plus two.", "4")
    assert split_reasoning(" 4 ") == (None, "4")
    assert split_reasoning("<think>\nstill thinking") == ("still thinking", "")        # cut short: no answer
    assert split_reasoning("4 <think>x</think>") == (None, "4 <think>x</think>")       # only an opening block counts
    (reply, _), = assistant_reply(thinking("R", "A"))
    assert split_reasoning(reply) == ("R", "A")


@pytest.mark.parametrize("messages, message", [
    ([USER, thinking(5)], r"^messages\[1\]: 'reasoning' must be a string, got int$"),
    ([USER, thinking(None)], r"^messages\[1\]: 'reasoning' must be a string, got NoneType$"),
    ([{"role": "user", "content": "q", "reasoning": "r"}, {"role": "assistant", "content": "a"}],
     r"^messages\[0\]: 'reasoning' is for assistant messages, not a user message$"),
    ([USER, {"role": "assistant", "content": "a", "reasoning": "r", "reasoning_content": "r"}],
     r"^messages\[1\]: both 'reasoning' and 'reasoning_content': give the reasoning once$"),
    ([USER, thinking("r", "<think>r</think>a")], r"^messages\[1\]: the reasoning is given twice"),
    ([USER, {"role": "assistant", "content": "<think>\nr\nand no end"}],
     r"^messages\[1\]: the content opens <think> and never closes it with </think>$"),
    ([USER, thinking("r</think>a")], r"^messages\[1\]: 'reasoning' holds </think>"),
    ([USER, {"role": "assistant", "content": "a", "thinking": "r"}], r"^messages\[1\] must be \{\"role\""),
])
def test_bad_reasoning_names_the_message(messages, message):
    with pytest.raises(ValueError, match=message):
        conversation_segments(messages)


def test_the_helpers_errors_name_where():
    with pytest.raises(ValueError, match=r"^pair 3: chosen: 'reasoning' must be a string, got list$"):
        assistant_reply(thinking(["r"]), where="pair 3: chosen")
    with pytest.raises(ValueError, match=r"^reply: a reply is an assistant message, got role 'user'$"):
        assistant_reply(USER)
    with pytest.raises(ValueError, match=r"^reply must be \{"):
        assistant_reply("text")
    with pytest.raises(ValueError, match=r"^p:1: messages ends with a assistant message: end it with the user's turn"):
        conversation_prompt([USER, {"role": "assistant", "content": "a"}], where="p:1: messages")
    with pytest.raises(ValueError, match=r"^messages ends with a system message"):
        conversation_prompt([{"role": "system", "content": "s"}])
    with pytest.raises(ValueError, match=r"^messages\[1\]: the content opens <think>"):
        conversation_prompt([USER, {"role": "assistant", "content": "<think>r"}, USER])
    with pytest.raises(ValueError, match=r"^messages must be a non-empty list"):
        conversation_prompt([])
