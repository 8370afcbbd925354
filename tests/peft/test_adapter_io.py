"""src/peft/adapter_io.py: our adapter files, strictness, finding the newest, reading any format."""

import copy
import json

import pytest
import torch

from src.model import RWKV6Config
from src.model import init_model
from src.peft import (PeftConfig, adapter_state_dict, apply_peft, find_adapter, load_adapter, read_adapter,
                      save_adapter)
from src.peft.adapter_io import read_any_adapter
from tests.helpers import rel_err
from tests.peft.helpers import SMALL, adapted, logits, method_matrix


@pytest.mark.parametrize("config", [*method_matrix().values(), PeftConfig("bone", 16, train_parts=("time",))],
                         ids=[*method_matrix(), "bone_train_parts"])
def test_round_trip(tmp_path, base, config):
    model = adapted(base, config)
    if config.train_parts:
        with torch.no_grad():
            model.blocks[0].att.time_decay.add_(0.1)
    save_adapter(model, config, tmp_path / "a", step=7)
    meta = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert meta["step"] == 7 and meta["peft"]["method"] == config.method
    assert meta["base_model"] == SMALL.shape_signature()
    saved = torch.load(tmp_path / "a" / "adapter.pth")
    assert set(saved) == set(adapter_state_dict(model))
    assert all(not k.endswith(".weight") or config.train_parts for k in saved)   # no base weights
    fresh = load_adapter(copy.deepcopy(base), tmp_path / "a")
    assert rel_err(logits(fresh), logits(model)) < 1e-6
    # loading into a model that already carries the same kind of adapters works too
    again = load_adapter(apply_peft(copy.deepcopy(base), config, verbose=False), tmp_path / "a")
    assert rel_err(logits(again), logits(model)) < 1e-6


def test_only_trainable_tensors_are_saved(tmp_path, base):
    model = adapted(base, PeftConfig("bone", 16))
    save_adapter(model, model.peft_config, tmp_path / "a")
    keys = set(torch.load(tmp_path / "a" / "adapter.pth"))
    assert keys == {f"blocks.{i}.{n}.bone" for i in range(2) for n in
                    ("att.receptance", "att.key", "att.value", "att.gate", "att.output",
                     "ffn.key", "ffn.receptance", "ffn.value")}
    assert [p.name for p in tmp_path.iterdir()] == ["a"]                        # no temporary directory left


def test_strict_loading_says_what_differs(tmp_path, base):
    save_adapter(adapted(base, PeftConfig("bat", 16)), None, tmp_path / "bat")
    with pytest.raises(ValueError, match="method bat in the file, bone in the model"):
        load_adapter(apply_peft(copy.deepcopy(base), PeftConfig("bone", 16), verbose=False), tmp_path / "bat")
    with pytest.raises(ValueError, match="r 16 in the file, 32 in the model"):
        load_adapter(apply_peft(copy.deepcopy(base), PeftConfig("bat", 32), verbose=False), tmp_path / "bat")
    other = init_model(RWKV6Config(n_layer=3, n_embd=128, vocab_size=300))
    with pytest.raises(ValueError, match="trained on another base model: n_layer 2 in the adapter's base, 3 in this model"):
        load_adapter(other, tmp_path / "bat")


def test_tampered_and_missing_files(tmp_path, base):
    save_adapter(adapted(base, PeftConfig("bone", 16)), None, tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_adapter(copy.deepcopy(base), tmp_path / "nothing")
    tensors = torch.load(tmp_path / "a" / "adapter.pth")
    tensors["blocks.0.att.key.bone"] = torch.zeros(8, 128)
    torch.save(tensors, tmp_path / "a" / "adapter.pth")
    with pytest.raises(ValueError, match="adapter.pth does not match adapter_config.json"):
        read_adapter(tmp_path / "a")
    (tmp_path / "a" / "adapter.pth").unlink()
    with pytest.raises(FileNotFoundError, match="adapter.pth is missing"):
        read_adapter(tmp_path / "a")


def test_wrong_shape_names_the_key(tmp_path, base):
    model = adapted(base, PeftConfig("bone", 16))
    save_adapter(model, None, tmp_path / "a")
    tensors = torch.load(tmp_path / "a" / "adapter.pth")
    tensors["blocks.1.ffn.key.bone"] = torch.zeros(16, 400)
    torch.save(tensors, tmp_path / "a" / "adapter.pth")
    meta = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    from src.peft.adapter_io import _sha256
    meta["adapter_sha256"] = _sha256(tmp_path / "a" / "adapter.pth")
    (tmp_path / "a" / "adapter_config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"key blocks.1.ffn.key.bone has shape \(16, 400\) in the file, "
                                         r"the model expects \(16, 448\)"):
        load_adapter(copy.deepcopy(base), tmp_path / "a")


def test_find_adapter_picks_the_newest_checkpoint(tmp_path, base):
    model = adapted(base, PeftConfig("bone", 16))
    for step in (100, 300, 200):
        save_adapter(model, None, tmp_path / "run" / f"checkpoint-{step}", step=step)
    assert find_adapter(tmp_path / "run").name == "checkpoint-300"
    assert find_adapter(tmp_path / "run" / "checkpoint-100").name == "checkpoint-100"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no adapter in"):
        find_adapter(tmp_path / "empty")


def test_a_bare_pth_needs_a_method(tmp_path, base):
    torch.save(adapter_state_dict(adapted(base, PeftConfig("bone", 16))), tmp_path / "x.pth")
    with pytest.raises(ValueError, match="say which method it is"):
        read_any_adapter(tmp_path / "x.pth")


def test_save_writes_the_tensors_it_is_given(tmp_path, base):
    """A trainer passes its fp32 master copies; the rest comes from the model."""
    model = adapted(base, PeftConfig("bone", 16, train_parts=("ln_x",)))
    own = adapter_state_dict(model)
    masters = {"blocks.0.att.key.bone": own["blocks.0.att.key.bone"] + 1.0}
    save_adapter(model, None, tmp_path / "a", tensors=masters)
    saved = read_adapter(tmp_path / "a").tensors
    assert torch.equal(saved["blocks.0.att.key.bone"], masters["blocks.0.att.key.bone"])
    assert torch.equal(saved["blocks.1.att.key.bone"], own["blocks.1.att.key.bone"])
    assert torch.equal(model.blocks[0].att.key.bone, own["blocks.0.att.key.bone"])      # the model is untouched
    with pytest.raises(ValueError, match=r"\['emb.weight'\] are not adapter tensors of this model"):
        save_adapter(model, None, tmp_path / "b", tensors={"emb.weight": torch.zeros(300, 128)})
    with pytest.raises(ValueError, match=r"blocks.0.att.key.bone has shape \(3,\), the model's is \(16, 128\)"):
        save_adapter(model, None, tmp_path / "b", tensors={"blocks.0.att.key.bone": torch.zeros(3)})
    assert not (tmp_path / "b").exists()


def test_find_adapter_skips_staging_and_says_when_it_cannot_tell(tmp_path, base):
    model = adapted(base, PeftConfig("bone", 16))
    save_adapter(model, None, tmp_path / "run" / "checkpoint-000002", step=2)
    save_adapter(model, None, tmp_path / "run" / ".checkpoint-000004.tmp", step=4)    # a save in progress
    assert find_adapter(tmp_path / "run").name == "checkpoint-000002"
    save_adapter(model, None, tmp_path / "run" / "checkpoint-000006", step=6)
    (tmp_path / "run" / "checkpoint-000006" / "adapter_config.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"checkpoint-000006/adapter_config.json cannot be read .* the newest adapter "
                                         r"in .*run is unknown; give the adapter directory itself"):
        find_adapter(tmp_path / "run")


def test_a_full_fine_tune_is_not_an_adapter(tmp_path):
    (tmp_path / "full" / "checkpoint-000003").mkdir(parents=True)
    torch.save({}, tmp_path / "full" / "checkpoint-000003" / "model.pth")
    with pytest.raises(FileNotFoundError, match=r"fully fine-tuned model .*model\.pth\), a plain RWKV checkpoint "
                                                r"already: use it as it is, no merge is needed"):
        find_adapter(tmp_path / "full")
