"""src/model/rwkv7.py: RWKV-7 against the `rwkv` package (RWKV_V7_ON=1, CPU fp32, one token at a time),
strict loading, the family detected from the keys, states carried across pieces, gradient checkpointing."""

import json
import os
import subprocess
import sys

import pytest
import torch

from src.model import RWKV7, RWKV7Config, RWKVState, load_model, load_rwkv6, load_rwkv7, save_rwkv7
from src.model import init_model
from src.model.state import STATE_RECORD_KEY
from tests.helpers import assert_matches_the_oracle, random_checkpoint, rel_err

SMALL = RWKV7Config(n_layer=2, n_embd=128, vocab_size=300)


def pip_logits(path, tokens, state_file=None):
    """The package's RWKV_x070, strategy 'cpu fp32', fed one token at a time, in a fresh process: the
    package reads RWKV_V7_ON when it is imported, and this process may have imported it without. A
    state file goes in as RWKV Runner hands it over: each time_state as the layer's WKV state, as it is."""
    start = "None" if state_file is None else (
        f"[t for i in range(model.n_layer) for t in (torch.zeros(model.n_embd), "
        f"torch.load({str(state_file)!r})[f'blocks.{{i}}.att.time_state'].float(), torch.zeros(model.n_embd))]")
    code = ("import json, sys, torch\nfrom rwkv.model import RWKV\n"
            f"model = RWKV(model={str(path)[:-4]!r}, strategy='cpu fp32')\n"      # it appends .pth itself
            f"state, out = {start}, []\n"
            f"for t in {list(tokens)}:\n"
            "    o, state = model.forward([t], state)\n"
            "    out.append(o.tolist())\n"
            "json.dump(out, sys.stdout)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWKV_")}
    done = subprocess.run([sys.executable, "-c", code], env={**env, "RWKV_V7_ON": "1"}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return torch.tensor(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("config", [
    SMALL,
    pytest.param(RWKV7Config(n_layer=3, n_embd=256, vocab_size=777, d_decay_lora=96, d_aaa_lora=64, d_mv_lora=32,
                             d_gate_lora=160), marks=pytest.mark.slow, id="wider-loras"),
], ids=["small", "wider-loras"])
def test_logits_match_the_rwkv_pip_package(tmp_path, config):
    path, tokens = random_checkpoint(tmp_path, config, init_model, save_rwkv7, n_tokens=24)
    model = load_rwkv7(path)
    assert model.config == config                      # every width read from the file
    assert_matches_the_oracle(model, tokens, pip_logits(path, tokens.tolist()))


def test_loading_is_strict_and_the_family_comes_from_the_keys(tmp_path):
    path = tmp_path / "v7.pth"
    save_rwkv7(init_model(SMALL, seed=1), path, dtype=torch.float32)
    assert isinstance(load_model(path), RWKV7)
    with pytest.raises(ValueError, match=r"is an RWKV-7 \(x070\) model, not RWKV-6 \(x060\): load it with load_model"):
        load_rwkv6(path)
    sd = torch.load(path, weights_only=True)
    del sd["blocks.1.att.k_a"]
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"missing key blocks.1.att.k_a \(expected shape \(1, 1, 128\)\)"):
        load_rwkv7(path)


def test_pieces_with_the_state_carried_equal_the_whole_sequence():
    model = init_model(SMALL.replace(grad_cp=True), seed=2, nonzero=True).train()
    idx = torch.randint(0, SMALL.vocab_size, (2, 23), generator=torch.Generator().manual_seed(0))
    whole, end = model(idx, return_state=True)
    state, pieces = None, []
    for a, b in [(0, 1), (1, 9), (9, 10), (10, 23)]:
        logits, state = model(idx[:, a:b], state=state, return_state=True)
        pieces.append(logits)
    assert rel_err(torch.cat(pieces, 1), whole) < 1e-5
    for x, y in zip(state.tensors(), end.tensors()):
        assert rel_err(x, y) < 1e-5
    assert isinstance(state, RWKVState) and state.wkv[0].shape == (2, 2, 64, 64)


def test_gradient_checkpointing_gives_the_same_gradients():
    idx = torch.randint(0, SMALL.vocab_size, (2, 17), generator=torch.Generator().manual_seed(0))
    grads = []
    for grad_cp in (False, True):
        model = init_model(SMALL.replace(grad_cp=grad_cp), seed=2, nonzero=True).train()
        torch.nn.functional.cross_entropy(model(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten()).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    unused = {name for name, g in grads[0].items() if g is None}
    assert unused == {"blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"}     # kept for the file format
    for name, g in grads[0].items():
        if g is not None:
            assert rel_err(grads[1][name], g) < 1e-5, name
    assert grads[0]["blocks.1.att.v1"].abs().max() > 0           # the value residual reaches layer 1's v1


@pytest.mark.slow
def test_state_files_in_rwkv7s_layout_give_the_rwkv_packages_logits(tmp_path):
    """RWKV7 state files hold the [value, key] state as it is (no transpose, unlike RWKV6's)."""
    path, state_path = tmp_path / "model.pth", tmp_path / "state.pth"
    save_rwkv7(init_model(SMALL, seed=11, nonzero=True), path, dtype=torch.float32)
    g = torch.Generator().manual_seed(4)
    state = RWKVState.from_wkv([torch.randn(1, 2, 64, 64, generator=g) for _ in range(2)], 128, family="x070")
    state.save(state_path)
    assert torch.equal(torch.load(state_path, weights_only=True)["blocks.1.att.time_state"], state.wkv[1][0])
    tokens = torch.randint(0, SMALL.vocab_size, (12,), generator=torch.Generator().manual_seed(0))
    model = load_rwkv7(path)
    with torch.no_grad():
        ours = model(tokens[None], state=RWKVState.from_file(state_path, model.config))[0]
        assert torch.equal(model(tokens[None], state=RWKVState.from_file(state_path))[0], ours)   # it records x070
        bare = tmp_path / "bare.pth"                              # a state file that records no family
        torch.save({k: v for k, v in torch.load(state_path, weights_only=True).items() if k != STATE_RECORD_KEY}, bare)
        with pytest.raises(ValueError, match="the state is of model family x060, the model of x070"):
            model(tokens[None], state=RWKVState.from_file(bare))
    assert rel_err(ours, pip_logits(path, tokens.tolist(), state_path)) < 1e-4
    assert rel_err(ours, pip_logits(path, tokens.tolist())) > 1e-2


def test_the_cuda_kernels_source_runs_the_model():
    """RWKV7 on the WKV7 kernel's own source (cuda_emulated, bf16): the logits of the float64 reference
    model to bf16's precision, and pieces with the state carried equal the whole sequence."""
    idx = torch.randint(0, SMALL.vocab_size, (1, 19), generator=torch.Generator().manual_seed(0))
    model = init_model(SMALL.replace(wkv_backend="cuda_emulated"), seed=2, nonzero=True).to(torch.bfloat16)
    reference = init_model(SMALL.replace(wkv_backend="naive"), seed=2, nonzero=True).double()
    with torch.no_grad():
        whole, end = model(idx, return_state=True)
        first, mid = model(idx[:, :7], return_state=True)
        second, _ = model(idx[:, 7:], state=mid, return_state=True)
        expected = reference(idx)
    assert rel_err(whole.double(), expected) < 5e-2
    assert rel_err(torch.cat([first, second], 1).double(), whole.double()) < 2e-2
