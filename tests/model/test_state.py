"""src/model/state.py and the model's state path: pieces equal the whole sequence on every backend,
state files in RWKV-LM's layout, and the `rwkv` pip package given our state gives our logits."""

import re

import pytest
import torch

from src.model import RWKV6Config, RWKVState, load_rwkv6, read_state_file, save_rwkv6
from src.model import init_model
from src.model.family import families
from src.model.state import STATE_RECORD_KEY, read_state_record, state_record
from tests.helpers import rel_err, rwkv_pip_model

CONFIG = RWKV6Config(n_layer=2, n_embd=128, vocab_size=300)
PIECES = [(0, 1), (1, 2), (2, 19), (19, 20), (20, 37)]          # T = 1 pieces among longer ones


def random_state(config, batch=1, seed=0, dtype=torch.float32) -> RWKVState:
    g = torch.Generator().manual_seed(seed)
    L, C, H, N = config.n_layer, config.n_embd, config.n_head, config.head_size
    return RWKVState([torch.randn(batch, C, generator=g).to(dtype) for _ in range(L)],
                     [torch.randn(batch, H, N, N, generator=g) for _ in range(L)],
                     [torch.randn(batch, C, generator=g).to(dtype) for _ in range(L)])


def in_pieces(model, idx, state=None):
    outs = []
    for a, b in PIECES:
        logits, state = model(idx[:, a:b], state=state, return_state=True)
        outs.append(logits)
    return torch.cat(outs, 1), state


@pytest.mark.parametrize("backend", ["naive", "chunked"])
@pytest.mark.parametrize("grad_cp", [False, True])
def test_pieces_with_the_state_carried_equal_the_whole_sequence(backend, grad_cp):
    model = init_model(CONFIG.replace(wkv_backend=backend, grad_cp=grad_cp), seed=1, nonzero=True).train()
    idx = torch.randint(0, CONFIG.vocab_size, (2, 37), generator=torch.Generator().manual_seed(0))
    start = random_state(CONFIG, batch=2)
    for initial in (None, start):
        whole, end = model(idx, state=initial, return_state=True)
        pieces, end_pieces = in_pieces(model, idx, initial)
        assert rel_err(pieces, whole) < 1e-5
        for a, b in zip(end_pieces.tensors(), end.tensors()):
            assert rel_err(a, b) < 1e-5
    assert torch.equal(model(idx), model(idx, return_state=True)[0])        # plain model(idx) unchanged
    # the state matters: a different start gives different logits
    assert rel_err(model(idx, state=start), model(idx)) > 1e-2


def test_gradients_flow_across_pieces():
    """The returned state carries the graph: a loss on the second piece reaches the first piece's inputs."""
    model = init_model(CONFIG, seed=1, nonzero=True).double()
    idx = torch.randint(0, CONFIG.vocab_size, (1, 20), generator=torch.Generator().manual_seed(0))
    grads = []
    for pieces in ([(0, 20)], [(0, 9), (9, 20)]):
        model.zero_grad()
        state, logits = None, []
        for a, b in pieces:
            out, state = model(idx[:, a:b], state=state, return_state=True)
            logits.append(out)
        torch.cat(logits, 1)[:, 12:].sum().backward()       # only positions of the second piece
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, g in grads[0].items():
        assert rel_err(grads[1][name], g) < 1e-9, name
    assert grads[1]["blocks.0.att.time_maa_k"].abs().max() > 0


def test_the_cuda_kernels_source_carries_the_state(monkeypatch):
    """cuda_emulated (the kernel's own source on the CPU, bf16) in pieces equals it whole."""
    model = init_model(CONFIG.replace(wkv_backend="cuda_emulated"), seed=1, nonzero=True).to(torch.bfloat16)
    idx = torch.randint(0, CONFIG.vocab_size, (1, 37), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole, end = model(idx, return_state=True)
        pieces, end_pieces = in_pieces(model, idx)
        reference = init_model(CONFIG.replace(wkv_backend="naive"), seed=1, nonzero=True).double()(idx)
    assert rel_err(pieces.double(), whole.double()) < 1e-2
    assert rel_err(end_pieces.wkv[1], end.wkv[1]) < 1e-2
    assert rel_err(whole.double(), reference) < 5e-2


def test_a_state_that_does_not_fit_is_refused():
    model = init_model(CONFIG, seed=1)
    idx = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="batch 1 in the state, 2 in the model"):
        model(idx, state=random_state(CONFIG, batch=1))
    with pytest.raises(ValueError, match="layers 3 in the state, 2 in the model"):
        model(idx, state=random_state(CONFIG.replace(n_layer=3), batch=2))
    with pytest.raises(ValueError, match="state must be an RWKVState"):
        model(idx, state=[torch.zeros(1)])


# ------------------------------------------------------------------ state files

def test_state_files_round_trip_in_rwkv_lms_layout(tmp_path):
    state = random_state(CONFIG, batch=2)
    path = state.save(tmp_path / "state.pth", index=1)
    raw = torch.load(path, weights_only=True)
    assert sorted(raw) == ["blocks.0.att.time_state", "blocks.1.att.time_state", STATE_RECORD_KEY]
    assert read_state_record(raw) == {"family": "x060", "n_layer": 2, "n_head": 2, "head_size": 64}
    assert raw["blocks.0.att.time_state"].shape == (2, 64, 64)
    # the file holds [value, key]: runtimes transpose(1, 2) it into their [key, value] state
    assert torch.equal(raw["blocks.1.att.time_state"].transpose(1, 2), state.wkv[1][1])
    back = RWKVState.from_file(path, CONFIG)
    assert back.batch_size == 1 and torch.equal(back.wkv[0][0], state.wkv[0][1])
    assert all(not t.any() for t in back.att_shift + back.ffn_shift)     # the token shifts are not in the file


@pytest.mark.parametrize("content, message", [
    ({"blocks.0.att.time_state": torch.zeros(2, 64, 64)}, "missing blocks.1.att.time_state"),
    ({"blocks.0.att.time_state": torch.zeros(2, 64, 64), "blocks.1.att.time_state": torch.zeros(2, 32, 32)},
     r"blocks.1.att.time_state has shape \(2, 32, 32\), expected \(2, 64, 64\)"),
    ({**{f"blocks.{i}.att.time_state": torch.zeros(2, 64, 64) for i in range(2)}, "emb.weight": torch.zeros(3)},
     "unexpected key emb.weight"),
    ({**{f"blocks.{i}.att.time_state": torch.zeros(2, 64, 64) for i in range(3)}}, "unexpected blocks.2.att"),
    ({f"blocks.{i}.att.time_state": torch.full((2, 64, 64), float("nan")) for i in range(2)}, "NaN"),
    ([1, 2], "holds a list, expected a dict of tensors"),
    ({}, "is empty"),
])
def test_bad_state_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "state.pth"
    torch.save(content, path)
    with pytest.raises(ValueError, match=message):
        read_state_file(path, CONFIG)
    path.write_bytes(b"not a state")
    with pytest.raises(ValueError, match="cannot read state file"):
        read_state_file(path, CONFIG)


FAMILIES = [f.name for f in families()]


def same_shape(family: str, config=CONFIG):
    """A config of `family` whose states have the shapes of `config`'s."""
    from src.model.family import get_family
    return get_family(family).config_class(n_layer=config.n_layer, n_embd=config.n_embd,
                                           head_size=config.head_size, vocab_size=config.vocab_size)


@pytest.mark.parametrize("model_family", FAMILIES)
@pytest.mark.parametrize("file_family", FAMILIES)
def test_a_state_file_records_its_family_and_is_refused_on_another(tmp_path, file_family, model_family):
    """The families' states have the same shapes: only the record tells them apart."""
    path = RWKVState.zeros(same_shape(file_family)).save(tmp_path / "state.pth")
    model = same_shape(model_family)
    if file_family == model_family:
        assert RWKVState.from_file(path, model).family == model_family
        assert len(read_state_file(path, model)) == model.n_layer
        return
    names = [f"{f.title} ({f.name}), 2 layers, 2 heads of 64" for f in families()]
    expect = f"is for {names[FAMILIES.index(file_family)]}; the model is {names[FAMILIES.index(model_family)]}"
    for read in (lambda: RWKVState.from_file(path, model), lambda: read_state_file(path, model)):
        with pytest.raises(ValueError, match=re.escape(expect)):
            read()


def test_without_a_model_the_record_gives_the_family(tmp_path):
    for family in FAMILIES:
        path = RWKVState.zeros(same_shape(family)).save(tmp_path / f"{family}.pth")
        assert RWKVState.from_file(path).family == family
        other = next(f for f in FAMILIES if f != family)
        with pytest.raises(ValueError, match=f"is for .*\\({family}\\).*, not .*\\({other}\\)"):
            RWKVState.from_file(path, family=other)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_file_without_the_record_is_read_by_its_shapes_and_the_layout_said(tmp_path, capsys, family):
    """RWKV-PEFT's and RWKV Runner's state files hold the time_state tensors alone."""
    model = same_shape(family)
    state = random_state(model)
    state.family = family
    path = tmp_path / "state.pth"
    torch.save({k: v for k, v in state.file_tensors().items() if k != STATE_RECORD_KEY}, path)
    back = RWKVState.from_file(path, model)
    assert torch.equal(back.wkv[1], state.wkv[1])
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and note[0].startswith(f"note: state file {path} does not record its model family")
    from src.model.family import get_family
    assert f"read as {get_family(family).title} ({family}), 2 layers, 2 heads of 64, stored [value, key]" in note[0]
    read_state_file(path, model, note=False)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match=r"has shape \(2, 64, 64\), expected \(4, 32, 32\)"):
        read_state_file(path, same_shape(family).replace(head_size=32))       # the shapes still have to fit


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.int64])
def test_the_record_survives_a_converter_casting_every_tensor(tmp_path, dtype):
    path = RWKVState.zeros(same_shape("x070")).save(tmp_path / "state.pth")
    cast = {k: v.to(dtype) for k, v in torch.load(path, weights_only=True).items()}
    assert read_state_record(cast)["family"] == "x070"


@pytest.mark.parametrize("record, message", [
    (torch.tensor([1, 2, 3], dtype=torch.uint8), "rwkv_state_record is damaged"),
    (torch.tensor(list(b'{"family": "x999", "n_layer": 2, "n_head": 2, "head_size": 64}'), dtype=torch.uint8),
     "rwkv_state_record is damaged"),
    (torch.tensor(list(b'{"family": "x060"}'), dtype=torch.uint8), "rwkv_state_record is damaged"),
    (torch.full((3, 3), 300.0), "rwkv_state_record is damaged"),
    (state_record("x060", 2, 4, 32), r"its record says RWKV-6 \(x060\), 2 layers, 4 heads of 32, but it holds 2 "
                                     r"states of \(2, 64, 64\)"),
])
def test_a_damaged_record_is_named(tmp_path, record, message):
    path = tmp_path / "state.pth"
    torch.save({**{f"blocks.{i}.att.time_state": torch.zeros(2, 64, 64) for i in range(2)},
                STATE_RECORD_KEY: record}, path)
    with pytest.raises(ValueError, match=message):
        read_state_file(path)


def pip_logits(path, tokens, state=None):
    model = rwkv_pip_model(path)
    out, state = model.forward(tokens, state, full_output=True)
    return out, state


@pytest.mark.slow
def test_the_rwkv_pip_package_given_our_state_file_gives_our_logits(tmp_path):
    """A random non-zero checkpoint and state: the package, handed the state file through the runtimes'
    transpose, gives our logits and our final state."""
    path, state_path = tmp_path / "model.pth", tmp_path / "state.pth"
    save_rwkv6(init_model(CONFIG, seed=11, nonzero=True), path, dtype=torch.float32)
    random_state(CONFIG, seed=4).save(state_path)
    tokens = torch.randint(0, CONFIG.vocab_size, (30,), generator=torch.Generator().manual_seed(0))
    model = load_rwkv6(path)
    with torch.no_grad():
        ours, ours_end = model(tokens[None], state=RWKVState.from_file(state_path, CONFIG), return_state=True)
        from_zero = model(tokens[None])
    file = torch.load(state_path, weights_only=True)
    pip_state = []
    for i in range(CONFIG.n_layer):
        pip_state += [torch.zeros(CONFIG.n_embd), file[f"blocks.{i}.att.time_state"].transpose(1, 2).contiguous(),
                      torch.zeros(CONFIG.n_embd)]
    theirs, their_end = pip_logits(path, tokens.tolist(), pip_state)
    assert rel_err(ours[0], theirs) < 1e-4 and rel_err(from_zero[0], theirs) > 1e-2
    for i in range(CONFIG.n_layer):       # and the state after the sequence, part by part
        assert rel_err(ours_end.att_shift[i][0], their_end[3 * i]) < 1e-4
        assert rel_err(ours_end.wkv[i][0], their_end[3 * i + 1]) < 1e-4
        assert rel_err(ours_end.ffn_shift[i][0], their_end[3 * i + 2]) < 1e-4


@pytest.mark.slow
def test_the_rwkv_pip_package_reads_the_state_inside_a_model_file(tmp_path):
    """The package's own way: time_state keys stored in the model file are its initial state."""
    path, state_path = tmp_path / "model.pth", tmp_path / "state.pth"
    save_rwkv6(init_model(CONFIG, seed=11, nonzero=True), path, dtype=torch.float32)
    random_state(CONFIG, seed=4).save(state_path)
    tokens = torch.randint(0, CONFIG.vocab_size, (30,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = load_rwkv6(path)(tokens[None], state=RWKVState.from_file(state_path, CONFIG))
    with_state = tmp_path / "model-with-state.pth"
    torch.save({**torch.load(path, weights_only=True), **torch.load(state_path, weights_only=True)}, with_state)
    theirs_inside, _ = pip_logits(with_state, tokens.tolist())
    assert rel_err(ours[0], theirs_inside) < 1e-4
