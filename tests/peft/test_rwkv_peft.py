"""src/peft/rwkv_peft.py: RWKV-PEFT's adapter files, read and loaded as ours."""

import copy

import pytest
import torch

from src.peft import PeftConfig, adapter_state_dict, load_adapter, read_any_adapter, read_rwkv_peft_adapter
from tests.helpers import rel_err
from tests.peft.helpers import adapted, logits


def test_rwkv_peft_bone_and_bat_files(tmp_path, base):
    bone = adapted(base, PeftConfig("bone", 16, train_parts=("blocks.0.att.time_decay",)))
    sd = {k.replace(".bone", ".disha"): v for k, v in adapter_state_dict(bone).items()}
    torch.save(sd, tmp_path / "rwkv-3.pth")
    adapter = read_any_adapter(tmp_path, "bone")
    assert adapter.origin == "RWKV-PEFT" and adapter.step == 3 and adapter.config.r == 16
    assert adapter.config.train_parts == ("blocks.0.att.time_decay",)
    assert rel_err(logits(load_adapter(copy.deepcopy(base), adapter)), logits(bone)) < 1e-6

    bat = adapted(base, PeftConfig("bat", 16, bat_index="in"))
    torch.save({k.replace(".bat", ".disha"): v for k, v in adapter_state_dict(bat).items()}, tmp_path / "bat.pth")
    adapter = read_rwkv_peft_adapter(tmp_path / "bat.pth", "bat")
    assert adapter.config.bat_index == "in"
    assert rel_err(logits(load_adapter(copy.deepcopy(base), adapter)), logits(bat)) < 1e-6
    with pytest.raises(ValueError, match=r"holds \['bat'\] adapter tensors, expected bone for --bone"):
        read_rwkv_peft_adapter(tmp_path / "bat.pth", "bone")


def test_rwkv_peft_lora_and_pissa_files(tmp_path, base):
    lora = adapted(base, PeftConfig("lora", 8, alpha=32))
    torch.save(adapter_state_dict(lora), tmp_path / "lora.pth")
    with pytest.raises(ValueError, match="do not record lora_alpha"):
        read_rwkv_peft_adapter(tmp_path / "lora.pth", "lora")
    adapter = read_rwkv_peft_adapter(tmp_path / "lora.pth", "lora", lora_alpha=32)
    assert rel_err(logits(load_adapter(copy.deepcopy(base), adapter)), logits(lora)) < 1e-6

    pissa = adapted(base, PeftConfig("pissa", 8))
    sd = adapter_state_dict(pissa)
    torch.save({k: v for k, v in sd.items() if ".init_lora_" not in k}, tmp_path / "pissa.pth")
    torch.save({k: v for k, v in sd.items() if ".init_lora_" in k}, tmp_path / "init_pissa.pth")
    with pytest.raises(ValueError, match="needs RWKV-PEFT's init_pissa.pth"):
        read_rwkv_peft_adapter(tmp_path / "pissa.pth", "pissa")
    adapter = read_rwkv_peft_adapter(tmp_path / "pissa.pth", "pissa", pissa_init=tmp_path / "init_pissa.pth")
    assert rel_err(logits(load_adapter(copy.deepcopy(base), adapter)), logits(pissa)) < 1e-5
