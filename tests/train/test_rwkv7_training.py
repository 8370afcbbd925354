"""RWKV-7 through the whole path: adapters on its six linears, train.py (loss falls), merge (the rwkv
package runs the merged file to the adapter model's logits), infctx chunks, state tuning, generation."""

import pytest
import torch

from src.infer import Sampler, generate_tokens, load_for_inference
from src.model import RWKV7Config, load_rwkv7, save_rwkv7
from src.model import init_rwkv7
from src.peft import PeftConfig, apply_peft, load_adapter, read_adapter
from src.model import get_family
from src.peft.merge import merge_into_base
from src.train import config_from_values, run
from src.train.infctx import sample_loss
from tests.helpers import rel_err
from tests.model.test_rwkv7 import pip_logits
from tests.train.test_trainer import flags, losses

TINY = RWKV7Config.preset("tiny")
DEFAULT_TARGETS_X070 = get_family("x070").default_targets


@pytest.fixture(scope="module")
def base7(tmp_path_factory):
    path = tmp_path_factory.mktemp("v7") / "base7.pth"
    save_rwkv7(init_rwkv7(TINY, seed=3, nonzero=True), path, dtype=torch.float32)
    return path


def test_adapters_take_rwkv7s_six_linears_by_default(base7):
    model = apply_peft(load_rwkv7(base7), PeftConfig("bone", 16), verbose=False)
    assert model.peft_config.targets == DEFAULT_TARGETS_X070
    adapted = sorted({n.split(".", 2)[2].rsplit(".", 1)[0] for n, p in model.named_parameters() if p.requires_grad})
    assert adapted == sorted(DEFAULT_TARGETS_X070)
    with pytest.raises(ValueError, match="target 'att.gate' matches no linear layer"):
        apply_peft(load_rwkv7(base7), PeftConfig("bone", 16, targets=("att.gate",)), verbose=False)


@pytest.mark.slow
def test_train_merge_and_the_rwkv_package(base7, sample_data, tmp_path):
    proj = tmp_path / "bone7"
    run(config_from_values({}, flags(base7, sample_data, proj, lr_init=1e-2, lr_final=3e-3, epoch_steps=12)))
    curve = losses(proj)
    assert sum(curve[-3:]) < sum(curve[:3]), curve
    adapter = read_adapter(proj / "checkpoint-000012")
    assert adapter.config.targets == DEFAULT_TARGETS_X070 and adapter.base_model["family"] == "x070"
    merge_into_base(base7, adapter, tmp_path / "merged7.pth")
    tokens = torch.randint(0, 65536, (16,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        adapted = load_adapter(load_rwkv7(base7), adapter)(tokens[None])[0]
    assert rel_err(pip_logits(tmp_path / "merged7.pth", tokens.tolist()), adapted) < 1e-4


def bone_and_state(model):
    """Bone and state tuning on `model`, the trainable tensors small and non-zero (every path carries a gradient)."""
    model = apply_peft(model, PeftConfig("bone", 16, train_state=True), verbose=False).train()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.02, generator=torch.Generator().manual_seed(p.numel()))
    return model


def whole_and_chunked_gradients(model, B: int, T: int, chunk: int, masked: bool) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 65536, (B, T), generator=g), torch.randint(0, 65536, (B, T), generator=g)
    mask = (torch.rand(B, T, generator=g) < 0.7).float() if masked else torch.ones(B, T)
    grads = []
    for chunk_ctx in (0, chunk):
        model.zero_grad()
        sample_loss(model, x, y, mask, True, chunk_ctx).backward()
        grads.append({n: p.grad.float().clone() for n, p in model.named_parameters() if p.requires_grad})
    return grads


def test_infctx_chunks_and_state_tuning_on_rwkv7(base7):
    grads = whole_and_chunked_gradients(bone_and_state(load_rwkv7(base7)), B=2, T=30, chunk=8, masked=True)
    assert grads[0]["blocks.0.att.time_state"].abs().max() > 0
    for name, grad in grads[0].items():
        assert rel_err(grads[1][name], grad) < 1e-5, name


@pytest.mark.slow
def test_greedy_generation_equals_the_rwkv_package(base7):
    model, _ = load_for_inference(base7, device="cpu")
    prompt = [6699, 304, 25740]
    ours = list(generate_tokens(model, prompt, Sampler(temperature=0), 12, stop_token=None))
    logits = pip_logits(base7, prompt + ours)                # the package's logits after each fed token
    theirs = [int(t) for t in logits[len(prompt) - 1:-1].argmax(-1)]
    assert ours == theirs


def test_rwkv_peft_v7_files_load(base7, tmp_path):
    """RWKV-PEFT's v7 checkpoints: LoRA on the six linears (its DiSHA tensors are named .disha), the
    LayerNorms its default train_parts saves, and a tuned time_state, as written."""
    from src.peft import read_rwkv_peft_adapter
    g = torch.Generator().manual_seed(0)
    C, F_ = TINY.n_embd, TINY.dim_ffn
    shapes = {"att.receptance": (C, C), "att.key": (C, C), "att.value": (C, C), "att.output": (C, C),
              "ffn.key": (F_, C), "ffn.value": (C, F_)}
    tensors = {}
    for i in range(TINY.n_layer):
        for name, (out, inp) in shapes.items():
            tensors[f"blocks.{i}.{name}.lora_A"] = torch.randn(8, inp, generator=g) * 0.01
            tensors[f"blocks.{i}.{name}.lora_B"] = torch.randn(out, 8, generator=g) * 0.01
        tensors[f"blocks.{i}.ln1.weight"] = 1 + 0.01 * torch.randn(C, generator=g)
        tensors[f"blocks.{i}.att.time_state"] = torch.randn(TINY.n_head, 64, 64, generator=g) * 0.1
    torch.save(tensors, tmp_path / "rwkv-2.pth")
    adapter = read_rwkv_peft_adapter(tmp_path / "rwkv-2.pth", "lora", lora_alpha=16)
    assert adapter.config.train_state and sorted(adapter.config.targets) == sorted(
        f"blocks.{i}.{n}" for i in range(TINY.n_layer) for n in shapes)
    model = load_adapter(load_rwkv7(base7), adapter)
    assert torch.equal(model.blocks[1].att.time_state, tensors["blocks.1.att.time_state"])
    assert torch.equal(model.blocks[0].ln1.weight, tensors["blocks.0.ln1.weight"])
    disha = {"blocks.0.att.key.disha": torch.zeros(16, C)}
    torch.save(disha, tmp_path / "rwkv-3.pth")
    assert read_rwkv_peft_adapter(tmp_path / "rwkv-3.pth", "bone").config.r == 16


@pytest.mark.slow
def test_infctx_and_state_tuning_on_the_wkv7_kernels_source(base7):
    """cuda_emulated (bf16): chunks carry the state in and out of the kernel with its gradient; the
    gradients equal the whole sample's to bf16's precision, the tuned state's included."""
    model = bone_and_state(load_rwkv7(base7, dtype=torch.bfloat16, wkv_backend="cuda_emulated"))
    grads = whole_and_chunked_gradients(model, B=1, T=24, chunk=8, masked=False)
    for name in ("blocks.0.att.time_state", "blocks.1.att.time_state", "blocks.0.att.key.bone"):
        assert grads[0][name].abs().max() > 0
        assert rel_err(grads[1][name], grads[0][name]) < 5e-2, name
