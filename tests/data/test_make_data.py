"""src/data/make_data.py and scripts/make_data.sh: jsonl -> binidx with the World tokenizer."""

import json

import pytest

from src.data import BinIdx, TokenDataset
from src.data.make_data import main, make_data
from src.utils.paths import SAMPLE_DATA

EIFFEL = [6699, 304, 25740, 109, 39990, 4600, 4596, 22590, 30449, 4706]


@pytest.fixture
def tokenizer(world_tokenizer):
    return world_tokenizer


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_tokenizer_vector(tmp_path, tokenizer):
    src = write_jsonl(tmp_path / "e.jsonl", [{"text": "The Eiffel tower is in the city of"}])
    stats = make_data(src, tmp_path / "e", tokenizer)
    assert stats == {"kind": "text", "documents": 1, "tokens": 11}
    assert BinIdx(tmp_path / "e").document(0).tolist() == EIFFEL + [0]


def test_round_trip_of_the_sample_data(tmp_path, tokenizer):
    lines = (SAMPLE_DATA / "sample.jsonl").read_text().splitlines()
    stats = make_data(SAMPLE_DATA / "sample.jsonl", tmp_path / "s", tokenizer)
    data = BinIdx(tmp_path / "s")
    assert stats["documents"] == data.num_documents == len(lines) >= 50
    assert stats["tokens"] == data.num_tokens
    for d, line in enumerate(lines):
        doc = data.document(d).tolist()
        assert doc[-1] == 0 and 0 not in doc[:-1]
        assert tokenizer.decode(doc[:-1]) == json.loads(line)["text"]


def test_supervised_records(tmp_path, tokenizer):
    src = SAMPLE_DATA / "sample-sft.jsonl"
    stats = make_data(src, tmp_path / "sft", tokenizer)
    data = BinIdx(tmp_path / "sft")
    assert stats["kind"] == "sft" and data.num_documents == len(src.read_text().splitlines())
    first = json.loads(src.read_text().splitlines()[0])
    prompt, response = data.document_items(0)
    assert tokenizer.decode(prompt.tolist()) == first["prompt"]
    assert tokenizer.decode(response[:-1].tolist()) == first["response"] and response[-1] == 0
    x, y, mask = TokenDataset(data, "sft", ctx_len=256, num_batches=1)[0]
    assert (mask == 1).sum() >= 1


def test_blank_lines_are_skipped(tmp_path, tokenizer):
    src = tmp_path / "b.jsonl"
    src.write_text('{"text": "a"}\n\n   \n{"text": "b"}\n')
    assert make_data(src, tmp_path / "b", tokenizer)["documents"] == 2


@pytest.mark.parametrize("content, message", [
    ('{"text": "ok"}\n{"text": "ok"}\n{"text": broken}\n', r"bad\.jsonl:3: not valid JSON"),
    ('{"text": "ok"}\n["a list"]\n', r'bad\.jsonl:2: expected \{"text": ...\}, \{"prompt": ..., "response": ...\} or \{"messages": \[...\]\}, '
                                  r'got list'),
    ('{"messages": [{"role": "user", "content": "hi"}]}\n', r"bad\.jsonl:1: messages holds no assistant reply"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, '
     '{"role": "user", "content": "c"}]}\n', r"bad\.jsonl:1: messages ends with a user message"),
    ('{"messages": [{"role": "bot", "content": "hi"}]}\n', r"bad\.jsonl:1: messages\[0\]: role 'bot' is not one of"),
    ('{"messages": [{"role": "assistant", "content": "hi"}]}\n', r"messages\[0\]: an assistant reply must follow"),
    ('{"messages": []}\n', r"bad\.jsonl:1: messages must be a non-empty list"),
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning": 1}]}\n',
     r"bad\.jsonl:1: messages\[1\]: 'reasoning' must be a string, got int"),
    ('{"messages": [{"role": "user", "content": "q", "reasoning_content": "r"}, '
     '{"role": "assistant", "content": "a"}]}\n',
     r"bad\.jsonl:1: messages\[0\]: 'reasoning_content' is for assistant messages, not a user message"),
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>r</think>a", '
     '"reasoning": "r"}]}\n', r"bad\.jsonl:1: messages\[1\]: the reasoning is given twice"),
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>r"}]}\n',
     r"bad\.jsonl:1: messages\[1\]: the content opens <think> and never closes it with </think>"),
    ('{"body": "x"}\n', r"bad\.jsonl:1: expected .* got \['body'\]"),
    ('{"text": 5}\n', r"bad\.jsonl:1: 'text' must be a string, got int"),
    ('{"text": "a"}\n{"prompt": "q", "response": "a"}\n', r"bad\.jsonl:2: a sft record in a file of text records"),
    ("", r"bad\.jsonl holds no records"),
    ("\n  \n", r"bad\.jsonl holds no records"),
])
def test_bad_input_names_file_and_line_and_leaves_nothing(tmp_path, tokenizer, content, message):
    src = tmp_path / "bad.jsonl"
    src.write_text(content)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match=message):
        make_data(src, out / "d", tokenizer)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("record, fields, kinds", [
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "text": "t"}',
     "'messages', 'text'", "text and chat"),
    ('{"text": "t", "messages": []}', "'text', 'messages'", "text and chat"),
    ('{"prompt": "q", "response": "a", "text": "t"}', "'prompt', 'response', 'text'", "text and sft"),
    ('{"text": "t", "prompt": "q"}', "'text', 'prompt'", "text and sft"),
    ('{"response": "a", "messages": []}', "'response', 'messages'", "sft and chat"),
    ('{"prompt": "q", "response": "a", "messages": [], "text": "t"}', "'prompt', 'response', 'messages', 'text'",
     "text and sft and chat"),
])
def test_a_line_mixing_kinds_of_record_names_file_line_and_fields(tmp_path, tokenizer, record, fields, kinds):
    """No field is dropped silently: a line holding the fields of two kinds of record is refused, whatever
    kind the file's other lines are, and nothing is written."""
    src = tmp_path / "mixed.jsonl"
    src.write_text('{"text": "fine"}\n' + record + "\n")
    with pytest.raises(ValueError) as e:
        make_data(src, tmp_path / "d", tokenizer)
    assert str(e.value).startswith(f"{src}:2: a record mixes the fields {fields} of {kinds} records")
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed.jsonl"]


def test_fields_of_no_kind_are_still_allowed(tmp_path, tokenizer):
    src = write_jsonl(tmp_path / "extra.jsonl", [{"text": "a", "id": 1}, {"text": "b", "source": "web"}])
    assert make_data(src, tmp_path / "d", tokenizer)["documents"] == 2


def test_invalid_utf8_and_missing_input(tmp_path, tokenizer):
    src = tmp_path / "bin.jsonl"
    src.write_bytes(b'{"text": "fine"}\n{"text": "\xff"}\n')
    with pytest.raises(ValueError, match=r"bin\.jsonl:2: not valid UTF-8"):
        make_data(src, tmp_path / "d", tokenizer)
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl does not exist"):
        make_data(tmp_path / "missing.jsonl", tmp_path / "d", tokenizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin.jsonl"]


def test_failed_conversion_keeps_existing_output(tmp_path, tokenizer):
    make_data(write_jsonl(tmp_path / "good.jsonl", [{"text": "hello"}]), tmp_path / "d", tokenizer)
    before = (tmp_path / "d.bin").read_bytes()
    (tmp_path / "bad.jsonl").write_text('{"text": "x"}\n{oops\n')
    with pytest.raises(ValueError, match=r"d\.bin already exists; pass --overwrite to replace it"):
        make_data(tmp_path / "good.jsonl", tmp_path / "d", tokenizer)
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not valid JSON"):
        make_data(tmp_path / "bad.jsonl", tmp_path / "d", tokenizer, overwrite=True)
    assert (tmp_path / "d.bin").read_bytes() == before
    make_data(tmp_path / "good.jsonl", tmp_path / "d", tokenizer, overwrite=True)


def test_command_line(tmp_path, capsys, monkeypatch, tokenizer):
    """make_data.sh runs this main(): one line of success, or one line of error and status 2."""
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "The Eiffel tower is in the city of"}])
    assert main([str(src), str(tmp_path / "out")], tokenizer=tokenizer) == 0
    assert "1 text documents, 11 tokens" in capsys.readouterr().out
    assert BinIdx(tmp_path / "out").document(0).tolist() == EIFFEL + [0]
    (tmp_path / "bad.jsonl").write_text("{nope\n")
    monkeypatch.chdir(tmp_path)
    assert main(["bad.jsonl", "out2"], tokenizer=tokenizer) == 2
    err = capsys.readouterr().err
    assert err.startswith("make_data: error: bad.jsonl:1: not valid JSON") and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("out2*"))


REASONING_CHAT = {"messages": [
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "4", "reasoning": "Two and two."},
    {"role": "user", "content": "3+3?"},
    {"role": "assistant", "content": "<think>\nThree and three.\n</think>\n6"}]}


@pytest.mark.parametrize("loss_on_reasoning", [1, 0])
def test_reasoning_carries_loss_as_asked(tmp_path, tokenizer, loss_on_reasoning):
    """make_data.sh --loss_on_reasoning 1|0, read by TokenDataset --data_type sft: every target token is counted
    exactly when it belongs to a reply, its reasoning included only with 1; the token stream is the same."""
    src = write_jsonl(tmp_path / "r.jsonl", [REASONING_CHAT])
    argv = [str(src), str(tmp_path / "r"), "--loss_on_reasoning", str(loss_on_reasoning)]
    assert main(argv, tokenizer=tokenizer) == 0
    data = BinIdx(tmp_path / "r")
    items = [item.tolist() for item in data.document_items(0)]
    x, y, mask = TokenDataset(data, "sft", ctx_len=128).sample(0)
    context = ["User: 2+2?\n\nAssistant:", "User: 3+3?\n\nAssistant:"]
    reasoning = [" <think>\nTwo and two.\n</think>\n", " <think>\nThree and three.\n</think>\n"]
    answers = ["4\n\n", "6"]
    if loss_on_reasoning:
        expected = [(context[0], 0), (reasoning[0] + answers[0], 1), (context[1], 0), (reasoning[1] + answers[1], 1)]
    else:
        expected = [(context[0] + reasoning[0], 0), (answers[0], 1), (context[1] + reasoning[1], 0), (answers[1], 1)]
    assert [tokenizer.decode(i) for i in items[:-1]] + [tokenizer.decode(items[-1][:-1])] == [t for t, _ in expected]
    assert items[-1][-1] == 0
    counted = [c for (text, c) in expected for _ in tokenizer.encode(text)] + [1]     # + the end-of-document token
    n = len(counted)
    assert x[:n].tolist() == sum(items, [])
    assert mask[:n - 1].tolist() == counted[1:] and not mask[n - 1:].any()           # target t is token t + 1
    assert tokenizer.decode([int(t) for t in y[mask.bool()][:-1]]) == "".join(t for t, c in expected if c)


def test_loss_on_reasoning_changes_nothing_without_reasoning(tmp_path, tokenizer):
    make_data(SAMPLE_DATA / "sample-chat.jsonl", tmp_path / "a", tokenizer)
    make_data(SAMPLE_DATA / "sample-chat.jsonl", tmp_path / "b", tokenizer, loss_on_reasoning=False)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    assert (tmp_path / "a.idx").read_bytes() == (tmp_path / "b.idx").read_bytes()
