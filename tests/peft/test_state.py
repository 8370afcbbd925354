"""src/peft/state.py: state tuning. Only the initial states train, their layout is RWKV-LM's, the files
RWKV runtimes read come out of every save, and merging leaves them to the state file."""

import pytest
import torch
import torch.nn.functional as F

from src.model import RWKV6Config, RWKVState, load_rwkv6, save_rwkv6
from src.model import init_model
from src.model.state import file_layout, read_state_record
from src.peft import PeftConfig, apply_peft, load_adapter, merge_and_unload, read_adapter, save_adapter
from src.peft.merge import check_merge, merge_into_base
from src.peft.state import STATE_FILE, load_time_state
from tests.helpers import rel_err

CONFIG = RWKV6Config(n_layer=2, n_embd=128, vocab_size=300)
IDX = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(0))


def random_states(model, seed=1, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.blocks:
            block.att.time_state.copy_(torch.randn(block.att.time_state.shape, generator=g) * scale)


def test_only_the_initial_states_train_and_start_at_zero():
    base = init_model(CONFIG, seed=1, nonzero=True)
    expected = base(IDX)
    model = apply_peft(base, PeftConfig("state"), verbose=False)
    trainable = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"blocks.{i}.att.time_state": (2, 64, 64) for i in range(2)}
    assert torch.equal(model(IDX), expected)                    # a zero state is where every sequence starts
    F.cross_entropy(model(IDX).flatten(0, 1), IDX.flatten()).backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)
    assert all(model.get_parameter(n).grad.abs().max() > 0 for n in trainable)


def test_the_tuned_state_is_the_state_file_and_its_gradient_is_the_wkv_states():
    """time_state is stored [value, key]: the model starts from its transpose, and its gradient is the
    transposed gradient of an explicit initial WKV state (float64)."""
    model = apply_peft(init_model(CONFIG, seed=1, nonzero=True).double(), PeftConfig("state"), verbose=False)
    random_states(model)
    logits = model(IDX)
    explicit = RWKVState.from_wkv([file_layout(b.att.time_state.detach())[None].expand(2, -1, -1, -1).clone()
                                   .requires_grad_() for b in model.blocks], CONFIG.n_embd, torch.float64)
    assert rel_err(model(IDX, state=explicit), logits) < 1e-12
    target = torch.randn(logits.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (logits * target).sum().backward()
    (model(IDX, state=explicit) * target).sum().backward()
    for block, wkv in zip(model.blocks, explicit.wkv):
        assert rel_err(block.att.time_state.grad, file_layout(wkv.grad.sum(0))) < 1e-10


def test_saving_writes_a_state_file_that_gives_the_models_logits(tmp_path):
    model = apply_peft(init_model(CONFIG, seed=1, nonzero=True), PeftConfig("bone", 16, train_state=True),
                       verbose=False)
    random_states(model)
    save_adapter(model, None, tmp_path / "adapter")
    assert (tmp_path / "adapter" / STATE_FILE).is_file()
    record = read_state_record(torch.load(tmp_path / "adapter" / STATE_FILE, weights_only=True))
    assert record == {"family": CONFIG.family, "n_layer": 2, "n_head": CONFIG.n_head, "head_size": CONFIG.head_size}
    state = RWKVState.from_file(tmp_path / "adapter" / STATE_FILE, CONFIG)
    plain = merge_and_unload(model)                             # the tuned states are not weights: removed
    assert not any("time_state" in n for n, _ in plain.named_parameters())
    with torch.no_grad():
        tuned = apply_peft(init_model(CONFIG, seed=1, nonzero=True), PeftConfig("bone", 16, train_state=True),
                           verbose=False)
        load_adapter(tuned, read_adapter(tmp_path / "adapter"))
        assert rel_err(plain(IDX[:1], state=state), tuned(IDX[:1])) < 1e-5


def test_merge_leaves_the_state_to_its_file(tmp_path, capsys):
    base = tmp_path / "base.pth"
    save_rwkv6(init_model(CONFIG, seed=1, nonzero=True), base, dtype=torch.float32)
    model = apply_peft(load_rwkv6(base), PeftConfig("bone", 16, train_state=True), verbose=False)
    random_states(model)
    with torch.no_grad():
        model.blocks[0].att.key.bone.normal_(0, 0.1)
    save_adapter(model, None, tmp_path / "bone")
    adapter = read_adapter(tmp_path / "bone")
    report = merge_into_base(base, adapter, tmp_path / "merged.pth")
    assert report.layers == 16 and report.extra_tensors == 0
    assert "time_state" not in "".join(torch.load(tmp_path / "merged.pth", weights_only=True))
    diff, rel = check_merge(base, adapter, tmp_path / "merged.pth")      # merged model + state file = adapter
    assert rel < 1e-5
    save_adapter(apply_peft(load_rwkv6(base), PeftConfig("state"), verbose=False), None, tmp_path / "state")
    with pytest.raises(ValueError, match="is state tuning: it changes no weight, so there is nothing to merge"):
        merge_into_base(base, read_adapter(tmp_path / "state"), tmp_path / "nothing.pth")


def test_load_time_state_starts_from_a_file(tmp_path):
    g = torch.Generator().manual_seed(3)
    wkv = [torch.randn(1, 2, 64, 64, generator=g) for _ in range(2)]
    RWKVState.from_wkv(wkv, CONFIG.n_embd).save(tmp_path / "s.pth")
    model = apply_peft(init_model(CONFIG, seed=1), PeftConfig("state"), verbose=False)
    load_time_state(model, tmp_path / "s.pth")
    assert torch.equal(file_layout(model.blocks[1].att.time_state), wkv[1][0])
    plain = init_model(CONFIG, seed=1)
    with pytest.raises(ValueError, match="the model has no tuned state"):
        load_time_state(plain, tmp_path / "s.pth")


def test_peft_config_for_state_tuning():
    config = PeftConfig("state")
    assert (config.r, config.targets, config.train_state, config.options()) == (None, (), True, {})
    assert PeftConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="state tuning adapts no linear layer"):
        PeftConfig("state", 8)
    with pytest.raises(ValueError, match="state tuning adapts no linear layer"):
        PeftConfig("state", targets=("att.key",))
    with pytest.raises(ValueError, match="r must be a positive integer, got None"):
        PeftConfig("bone")


def test_rwkv_peft_files_with_a_state_read_as_train_state(tmp_path):
    from src.peft import read_rwkv_peft_adapter
    tensors = {"blocks.0.att.key.lora_A": torch.zeros(8, 128), "blocks.0.att.key.lora_B": torch.zeros(128, 8),
               **{f"blocks.{i}.att.time_state": torch.zeros(2, 64, 64) for i in range(2)}}
    torch.save(tensors, tmp_path / "rwkv-3.pth")
    adapter = read_rwkv_peft_adapter(tmp_path / "rwkv-3.pth", "lora", lora_alpha=16)
    assert adapter.config.train_state and adapter.config.train_parts == ()
    assert sorted(adapter.state_tensors()) == ["blocks.0.att.time_state", "blocks.1.att.time_state"]
    model = load_adapter(init_model(CONFIG, seed=1), adapter)
    assert model.blocks[1].att.time_state.shape == (2, 64, 64)
