"""src/infer/generate.py (generate.py): greedy decoding equals the `rwkv` package's, from a base model and
from base + adapter against the merged file; RNN-mode logits equal parallel ones; streamed text is whole
characters and stops before a stop text; --chat carries the conversation in the state."""

import io

import pytest
import torch

from src.data.chat import assistant_prompt
from src.infer import Sampler, TextStream, generate_tokens, load_for_inference
from src.infer.generate import ReasoningFilter, main
from src.model import RWKV6Config, RWKV7Config, RWKVState, load_rwkv6, save_rwkv6
from src.model import init_model
from src.peft import PeftConfig, apply_peft, read_adapter, save_adapter
from src.peft.merge import merge_into_base
from tests.helpers import rel_err, rwkv_pip_model

CONFIG = RWKV6Config(n_layer=2, n_embd=128, vocab_size=65536)
PROMPT = [6699, 304, 25740, 109, 39990]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "base.pth"
    save_rwkv6(init_model(CONFIG, seed=21, nonzero=True), path, dtype=torch.float32)
    return path


def pip_greedy(path, prompt, n):
    model = rwkv_pip_model(path)
    out, state = model.forward(prompt, None)
    tokens = []
    for _ in range(n):
        tokens.append(int(torch.argmax(out)))
        out, state = model.forward([tokens[-1]], state)
    return tokens


def ours_greedy(model, prompt, n, state=None):
    return list(generate_tokens(model, prompt, Sampler(temperature=0), n, state, stop_token=None))


@pytest.mark.slow
def test_greedy_decoding_equals_the_rwkv_package(base):
    model, _ = load_for_inference(base, device="cpu")
    assert ours_greedy(model, PROMPT, 24) == pip_greedy(base, PROMPT, 24)


@pytest.mark.slow
def test_base_plus_adapter_decodes_as_the_merged_file(base, tmp_path):
    model = apply_peft(load_rwkv6(base), PeftConfig("bone", 16), verbose=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    save_adapter(model, None, tmp_path / "bone")
    merge_into_base(base, read_adapter(tmp_path / "bone"), tmp_path / "merged.pth")
    adapted, _ = load_for_inference(base, adapter=tmp_path / "bone", device="cpu")
    plain, _ = load_for_inference(base, device="cpu")
    ours = ours_greedy(adapted, PROMPT, 24)
    assert ours == pip_greedy(tmp_path / "merged.pth", PROMPT, 24)
    assert ours != ours_greedy(plain, PROMPT, 24)          # the adapter changes what is generated


def test_rnn_mode_logits_equal_the_parallel_pass(base):
    model, _ = load_for_inference(base, device="cpu")
    tokens = PROMPT + ours_greedy(model, PROMPT, 10)
    with torch.no_grad():
        parallel = model(torch.tensor([tokens]))[0]
        logits, state = model(torch.tensor([PROMPT]), return_state=True)
        steps = [logits[0]]
        for t in tokens[len(PROMPT):]:
            logits, state = model(torch.tensor([[t]]), state=state, return_state=True)
            steps.append(logits[0])
    assert rel_err(torch.cat(steps)[:len(tokens)], parallel) < 1e-5


def test_sampling_is_reproducible(base):
    model, _ = load_for_inference(base, device="cpu")
    runs = [list(generate_tokens(model, PROMPT, Sampler(seed=s), 16)) for s in (5, 5, 6)]
    assert runs[0] == runs[1] != runs[2]


class BytesTokenizer:
    """Token i is the byte string PIECES[i]."""
    PIECES = [b"", "é".encode()[:1], "é".encode()[1:], b"ab", b"\n", b"\nX", b"c"]

    def decode_bytes(self, tokens):
        return b"".join(self.PIECES[t] for t in tokens)


def test_text_stream_gives_whole_characters_and_stops_before_the_stop_text():
    stream = TextStream(BytesTokenizer(), stops=("\n\n",))
    assert [stream.push(t) for t in (3, 1, 2, 6)] == ["ab", "", "é", "c"]     # é waits for its second byte
    assert stream.push(4) == "" and not stream.stopped                          # "\n" might begin the stop
    assert stream.push(5) == "" and stream.stopped                              # "\n\nX": stop, print nothing of it
    assert stream.flush() == ""
    open_end = TextStream(BytesTokenizer(), stops=("\n\n",))
    assert [open_end.push(t) for t in (3, 4)] == ["ab", ""] and open_end.flush() == "\n"


def test_token_0_ends_the_text_without_decoding(world_tokenizer):
    """Token 0 is not in the World vocabulary: it ends a document (and a chat reply of our data)."""
    stream = TextStream(world_tokenizer)
    ab = world_tokenizer.encode("ab")
    assert "".join(stream.push(t) for t in [*ab, 0]) + stream.flush() == "ab"


def test_chat_with_stdin_closed_ends_the_conversation(base, monkeypatch, capsys, world_tokenizer):
    monkeypatch.setattr("sys.stdin", None)                          # what `<&-` gives Python
    assert main(["--model", str(base), "--chat", "--prompt", "Hi", "--temperature", "0", "--max_tokens", "3",
                 "--device", "cpu"], tokenizer=world_tokenizer) == 0
    assert capsys.readouterr().out.strip()


def test_chat_refuses_a_line_that_is_not_utf8(base, monkeypatch, capsys, world_tokenizer):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9\n"), encoding="utf-8"))
    assert main(["--model", str(base), "--chat", "--temperature", "0", "--max_tokens", "3", "--device", "cpu"],
                tokenizer=world_tokenizer) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "generate.py: error: stdin: a line holds bytes that are not UTF-8 text")


def test_generate_py_prints_only_the_text(base, capsys, world_tokenizer):
    args = ["--model", str(base), "--prompt", "The Eiffel tower is in", "--temperature", "0", "--max_tokens", "12",
            "--device", "cpu"]
    assert main(args, tokenizer=world_tokenizer) == 0
    out, err = capsys.readouterr()
    model, _ = load_for_inference(base, device="cpu")
    tokens = list(generate_tokens(model, world_tokenizer.encode("The Eiffel tower is in"), Sampler(temperature=0), 12))
    expected = world_tokenizer.decode(tokens)
    assert out == expected and len(out) > 5
    assert "generated" in err and "generate.py" in err
    stop = expected[3:5]
    assert main([*args, "--stop", stop], tokenizer=world_tokenizer) == 0
    assert capsys.readouterr().out == expected[:expected.find(stop)]


def test_chat_keeps_the_conversation_in_the_state(base, monkeypatch, capsys, world_tokenizer):
    """Turn 2 of --chat equals a greedy continuation of the whole transcript fed from scratch."""
    monkeypatch.setattr("sys.stdin", io.StringIO("And then?\n"))
    assert main(["--model", str(base), "--chat", "--prompt", "Hi", "--temperature", "0", "--max_tokens", "8",
                 "--device", "cpu"], tokenizer=world_tokenizer) == 0
    replies = capsys.readouterr().out.split("\n")
    model, _ = load_for_inference(base, device="cpu")
    first = world_tokenizer.encode(assistant_prompt("Hi"))
    reply1 = list(generate_tokens(model, first, Sampler(temperature=0), 8))
    assert "\n\n" not in world_tokenizer.decode(reply1) and 0 not in reply1    # the turn ran to --max_tokens
    assert replies[0] == world_tokenizer.decode(reply1)
    # the reply did not end its turn, so the next one starts with the blank line the template needs
    second = world_tokenizer.encode("\n\n" + assistant_prompt("And then?"))
    reply2 = list(generate_tokens(model, first + reply1 + second, Sampler(temperature=0), 8))
    assert replies[1] == world_tokenizer.decode(reply2).split("\n\n")[0] and replies[1]


@pytest.mark.parametrize("argv, message", [
    (["--prompt", "x", "--max_tokens", "0"], "--max_tokens must be positive"),
    ([], "--prompt TEXT is required"),
    (["--prompt", "x", "--top_p", "2"], "--top_p must be in"),
    (["--prompt", "x", "--state", "nowhere.pth"], "--state nowhere.pth does not exist"),
    (["--prompt", "x", "--system", "s"], "--system is for --chat"),
    (["--prompt", "x", "--think"], "--think is for --chat"),
    (["--prompt", "x", "--show_reasoning"], "--show_reasoning is for --chat"),
    (["--prompt", "x", "--seed", str(2**70)], "--seed must be a whole number in [0, 2^64)"),
    (["--prompt", b"caf\xe9".decode("utf-8", "surrogateescape")], "--prompt holds bytes that are not UTF-8 text"),
    (["--prompt", "x", "--stop", b"\xff".decode("utf-8", "surrogateescape")], "--stop holds bytes that are not UTF-8"),
    (["--prompt", "x", "--adapter", "BARE"], "say which method it is (--method bone|bat|lora|pissa)"),
    (["--prompt", "x", "--state", "V7STATE"], "is for RWKV-7 (x070), 2 layers, 2 heads of 64; the model is RWKV-6 "
                                              "(x060), 2 layers, 2 heads of 64"),
])
def test_bad_input_is_one_line(base, argv, message, capsys, tmp_path):
    if "V7STATE" in argv:                                    # an RWKV-7 state of the same shapes as the model's
        RWKVState.zeros(RWKV7Config(n_layer=2, n_embd=128, vocab_size=65536)).save(tmp_path / "v7.pth")
        argv = [str(tmp_path / "v7.pth") if a == "V7STATE" else a for a in argv]
    if "BARE" in argv:                                       # a bare .pth: an RWKV-PEFT file of unknown method
        torch.save({"blocks.0.att.key.lora_A": torch.zeros(4, 128)}, tmp_path / "rwkv-3.pth")
        argv = [str(tmp_path / "rwkv-3.pth") if a == "BARE" else a for a in argv]
    assert main(["--model", str(base), "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and len([l for l in err if "Traceback" in l]) == 0


def test_the_reasoning_filter_drops_an_opening_think_block_however_the_text_comes():
    text = " <think>\nTwo and two.\n</think>\nFour."
    for size in (1, 2, 3, 7, len(text)):
        hidden = ReasoningFilter()
        shown = "".join(hidden.push(text[i:i + size]) for i in range(0, len(text), size)) + hidden.flush()
        assert shown == " Four." and hidden.opened and hidden.closed
    for plain in (" Four.", " <b>bold</b>", " <thin", "  ", " 4 <think>x</think>"):
        hidden = ReasoningFilter()
        assert "".join(hidden.push(c) for c in plain) + hidden.flush() == plain and not hidden.opened
    unfinished = ReasoningFilter(prefix=" <think")                      # --think: the prompt opened it
    assert unfinished.push(">\nstill going </thi") + unfinished.flush() == "" and unfinished.opened
    assert not unfinished.closed
    odd = ReasoningFilter(prefix=" <think")                             # whatever the model goes on with
    assert odd.push(" and on</think> Done.") == " Done." and odd.closed


class ForcedTokens:
    """Stands in for generate_tokens: each call yields the tokens of the next text, and its "state" is the list
    of every token the model has read (the prompts and everything generated), as a recurrent state holds them."""

    def __init__(self, tokenizer, texts):
        self.replies = [tokenizer.encode(t) for t in texts]
        self.calls = []

    def __call__(self, model, prompt, sampler, max_tokens, state=None, stop_token=0, done=None):
        read = list(state or []) + list(prompt)
        self.calls.append((list(state or []), list(prompt)))
        try:
            for token in self.replies[len(self.calls) - 1][:max_tokens]:
                read.append(token)
                yield token
        finally:
            if done is not None:
                done.append(read)


@pytest.mark.parametrize("think", [False, True])
@pytest.mark.parametrize("show", [False, True])
def test_chat_hides_or_shows_the_reasoning(base, monkeypatch, capsys, world_tokenizer, think, show):
    """--chat prints a reply without its <think>...</think> (a note on stderr) unless --show_reasoning; --think
    ends the context with RWKV-LM's "Assistant: <think"; the state reads every token, hidden ones too; the
    reply still stops at the end of the turn."""
    opening = "" if think else " <think"                 # with --think the prompt holds " <think" already
    forced = ForcedTokens(world_tokenizer, [opening + ">\nTwo and two.\n</think>\nFour.\n\nUser: more",
                                            opening + ">\n</think>\nSix.\n\n"])
    monkeypatch.setattr("src.infer.generate.generate_tokens", forced)
    monkeypatch.setattr("sys.stdin", io.StringIO("3+3?\n"))
    argv = ["--model", str(base), "--chat", "--prompt", "2+2?", "--device", "cpu"]
    assert main(argv + ["--think"] * think + ["--show_reasoning"] * show, tokenizer=world_tokenizer) == 0
    out, err = capsys.readouterr()
    if show:
        assert out == " <think>\nTwo and two.\n</think>\nFour.\n <think>\n</think>\nSix.\n"
    else:
        assert out == " Four.\n Six.\n"
    reasoning_tokens = len(world_tokenizer.encode(opening + ">\nTwo and two.\n</think>"))
    assert (f"[reasoning: {reasoning_tokens} tokens]" in err) == (not show)
    (state1, prompt1), (state2, prompt2) = forced.calls
    assert prompt1 == world_tokenizer.encode(assistant_prompt("2+2?") + " <think" * think)
    assert world_tokenizer.decode(prompt1).endswith("Assistant: <think" if think else "Assistant:")
    stop = world_tokenizer.encode("\n\n")[0]
    generated = forced.replies[0][:forced.replies[0].index(stop) + 1]             # up to the end of the turn
    assert state2 == prompt1 + generated                                           # the hidden reasoning was read
    assert prompt2 == world_tokenizer.encode(assistant_prompt("3+3?") + " <think" * think)


def test_chat_think_with_a_model(base, monkeypatch, capsys, world_tokenizer):
    """A real (random) model under --think: its reply never closes the reasoning, so nothing is printed and
    stderr says it was unfinished."""
    monkeypatch.setattr("sys.stdin", None)
    assert main(["--model", str(base), "--chat", "--think", "--prompt", "Hi", "--temperature", "0", "--max_tokens",
                 "3", "--device", "cpu"], tokenizer=world_tokenizer) == 0
    out, err = capsys.readouterr()
    assert out == "\n" and "[reasoning: 3 tokens, unfinished]" in err
