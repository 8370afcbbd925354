"""src/peft/hf_peft.py: adapter directories saved by Hugging Face peft (as RWKV-PEFT saves them now) load
through our code and give peft's own logits: LoRA and MiSS in its three modes, on both families."""

import json

import pytest
import torch
import torch.nn as nn

from src.model import families, load_model
from src.peft import load_adapter, read_any_adapter
from src.peft.merge import merge_into_base

FAMILIES = [f.name for f in families()]
TARGETS = ["receptance", "key", "value", "output"]        # RWKV-PEFT's target_modules
CONFIGS = {                                               # peft is imported by the tests that use it (slowly)
    "lora": lambda peft: peft.LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS),
    "miss": lambda peft: peft.MissConfig(r=16, target_modules=TARGETS),
    "miss_bat": lambda peft: peft.MissConfig(r=16, init_weights="bat", target_modules=TARGETS),
    "miss_mini": lambda peft: peft.MissConfig(r=16, mini_r=4, init_weights="mini", target_modules=["key", "value"]),
}
EXPECTED_METHOD = {"lora": "lora", "miss": "bone", "miss_bat": "bat", "miss_mini": "disha"}




def peft_trained(base, kind, directory):
    """Our model wrapped by peft as RWKV-PEFT wraps it (its module names under base_model.model.), one
    optimizer step taken, saved with save_pretrained. Returns our model, which now runs peft's layers."""
    import peft
    torch.manual_seed(0)
    model = load_model(base)
    shell = nn.Module()                                   # the model's own modules, without its config object
    for name, child in model.named_children():
        setattr(shell, name, child)
    wrapped = peft.get_peft_model(shell, CONFIGS[kind](peft))
    params = [p for p in wrapped.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.05)
    x = torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten()).backward()
        opt.step()
    wrapped.save_pretrained(directory)
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CONFIGS))
@pytest.mark.parametrize("family", FAMILIES)
def test_a_peft_directory_gives_peft_logits(tiny_bases, family, kind, tmp_path):
    theirs = peft_trained(tiny_bases[family], kind, tmp_path / "adapter")
    assert "peft_type" in json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    adapter = read_any_adapter(tmp_path / "adapter")
    assert adapter.config.method == EXPECTED_METHOD[kind] and adapter.origin == "Hugging Face peft"
    ours = load_adapter(load_model(tiny_bases[family]), adapter).eval()
    tokens = torch.randint(0, 65536, (1, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got, base = theirs(tokens), ours(tokens), load_model(tiny_bases[family])(tokens)
    assert (want - base).abs().max() > 1e-4                  # the step changed the model
    assert ((got - want).abs().max() / want.abs().max()).item() < 1e-5
    merged = tmp_path / "merged.pth"                         # merge.py --adapter DIR takes it too
    merge_into_base(tiny_bases[family], adapter, merged)
    with torch.no_grad():
        assert ((load_model(merged)(tokens) - want).abs().max() / want.abs().max()).item() < 1e-5


def test_what_our_methods_cannot_compute_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "use_dora": True}))
    (tmp_path / "adapter_model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="DoRA"):
        read_any_adapter(tmp_path)
