"""src/infer/evaluate.py (eval.py): the windows, the mean over predicted tokens (responses only for sft),
against a direct computation; batching changes nothing; the JSON line."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from src.data import BinIdx
from src.data.binidx import BinIdxWriter
from src.infer.evaluate import evaluate, windows
from src.infer.evaluate import main
from src.model import RWKV6Config, RWKVState, save_rwkv6
from src.model import init_model

CONFIG = RWKV6Config(n_layer=2, n_embd=128, vocab_size=300)


def test_windows():
    assert windows(10, 4) == [(0, 5), (4, 9), (8, 10)]
    assert windows(9, 4) == [(0, 5), (4, 9)]                 # token 8 is predicted by the second window
    assert windows(10, 4, max_windows=2) == [(0, 5), (4, 9)]
    assert windows(1, 4) == []


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three sft-shaped documents (context, response[, context, response]) of random tokens."""
    prefix = tmp_path_factory.mktemp("eval") / "d"
    g = np.random.default_rng(0)
    with BinIdxWriter(prefix) as w:
        for sizes in ([5, 9], [3, 4, 6, 2], [7, 8]):
            w.add_document([g.integers(1, 300, n).tolist() for n in sizes])
    return BinIdx(prefix)


def direct(model, data, ctx_len, sft):
    """Each window through the model on its own, the loss summed by hand."""
    tokens = torch.from_numpy(np.asarray(data.tokens, dtype=np.int64))
    flags = []
    for d in range(data.num_documents):
        for k, item in enumerate(data.document_items(d)):
            flags += [k % 2 == 1] * len(item)
    total, count = 0.0, 0
    with torch.no_grad():
        for s, e in windows(len(tokens), ctx_len):
            logits = model(tokens[None, s:e - 1])[0]
            losses = F.cross_entropy(logits, tokens[s + 1:e], reduction="none")
            keep = torch.tensor(flags[s + 1:e]) if sft else torch.ones(e - s - 1, dtype=torch.bool)
            total += float(losses[keep].sum())
            count += int(keep.sum())
    return total / count, count


@pytest.mark.parametrize("data_type", ["binidx", "sft"])
def test_the_loss_is_the_mean_over_predicted_tokens(data, data_type):
    model = init_model(CONFIG, seed=2, nonzero=True)
    loss, count = direct(model, data, 8, data_type == "sft")
    result = evaluate(model, data, 8, data_type)
    assert result["loss"] == pytest.approx(loss, rel=1e-6) and result["tokens"] == count
    assert result["ppl"] == pytest.approx(np.exp(loss), rel=1e-6)
    assert count == (data.num_tokens - 1 if data_type == "binidx" else 9 + 4 + 2 + 8)
    batched = evaluate(model, data, 8, data_type, batch_size=3)
    assert batched["loss"] == pytest.approx(result["loss"], rel=1e-6) and batched["tokens"] == count


def test_evaluation_builds_no_autograd_graph(data):
    """Validation runs on a model whose adapters train: without no_grad every window would keep its graph."""
    model = init_model(CONFIG, seed=2, nonzero=True)
    seen = []
    model.register_forward_hook(lambda module, args, out: seen.append((torch.is_grad_enabled(), out.requires_grad)))
    evaluate(model, data, 8, max_windows=2)
    assert seen == [(False, False)] * 2


def test_a_state_changes_every_windows_start(data):
    model = init_model(CONFIG, seed=2, nonzero=True)
    g = torch.Generator().manual_seed(0)
    state = RWKVState.from_wkv([torch.randn(1, 2, 64, 64, generator=g) for _ in range(2)], CONFIG.n_embd)
    plain, started = evaluate(model, data, 8), evaluate(model, data, 8, state=state)
    assert abs(plain["loss"] - started["loss"]) > 1e-3
    assert evaluate(model, data, 8, state=state, batch_size=2)["loss"] == pytest.approx(started["loss"], rel=1e-6)


def test_eval_py_prints_json_last(data, tmp_path, capsys):
    path = tmp_path / "m.pth"
    save_rwkv6(init_model(CONFIG, seed=2, nonzero=True), path, dtype=torch.float32)
    assert main(["--model", str(path), "--data", str(data.prefix), "--ctx_len", "8", "--data_type", "sft",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert set(result) == {"loss", "ppl", "tokens"} and result["tokens"] == 23
    for flag, value in (("--ctx_len", "0"), ("--max_windows", "0"), ("--max_windows", "-3"), ("--batch_size", "0")):
        assert main(["--model", str(path), "--data", str(data.prefix), flag, value, "--device", "cpu"]) == 2
        assert capsys.readouterr().err == f"eval.py: error: {flag} must be a positive whole number, got {value}\n"


def test_a_model_giving_nan_is_an_error_not_json(data, tmp_path, capsys):
    model = init_model(CONFIG, seed=2, nonzero=True)
    with torch.no_grad():
        model.blocks[0].att.time_decay_w1[0, 0] = float("nan")
    path = save_rwkv6(model, tmp_path / "nan.pth", dtype=torch.float32)
    assert main(["--model", str(path), "--data", str(data.prefix), "--ctx_len", "8", "--device", "cpu"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("eval.py: error: the loss is nan: the model's logits are not finite")
