"""src/train/infctx.py (--chunk_ctx): a sample in chunks gives the loss and every gradient of the
whole sample, with masks, every adapter method, state tuning and gradient checkpointing; its forward
keeps only the states between chunks; train.py with --chunk_ctx follows the unchunked run step by step."""

import csv
from pathlib import Path

import pytest
import torch

from src.bench.held import HeldMemory
from src.bench.infctx import boundary_bytes
from src.model import RWKV6Config
from src.model import init_rwkv6
from src.peft import PeftConfig, apply_peft, read_adapter
from src.peft.lora import DropoutDraw
from src.train import config_from_values, run
from src.train.infctx import sample_loss
from tests.helpers import rel_err
from tests.train.test_trainer import flags

CONFIG = RWKV6Config(n_layer=2, n_embd=128, vocab_size=300)
PEFTS = {"bone": PeftConfig("bone", 16), "bat": PeftConfig("bat", 16), "disha": PeftConfig("disha", 16, disha_r1=32),
         "lora": PeftConfig("lora", 8, alpha=16), "pissa": PeftConfig("pissa", 8),
         "state": PeftConfig("state"), "bone+state": PeftConfig("bone", 16, train_state=True)}


def model_with(peft: PeftConfig, grad_cp: bool = False, seed: int = 3):
    model = init_rwkv6(CONFIG.replace(grad_cp=grad_cp), seed=seed, nonzero=True)
    apply_peft(model, peft, verbose=False).train()
    with torch.no_grad():                       # non-zero adapters and states, so every path carries a gradient
        g = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def loss_and_grads(model, x, y, mask, chunk_ctx):
    model.zero_grad(set_to_none=True)
    loss = sample_loss(model, x, y, mask, True, chunk_ctx)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def batch(T: int = 40, B: int = 2, masked: bool = True, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, CONFIG.vocab_size, (B, T + 1), generator=g)
    mask = (torch.rand(B, T, generator=g) < 0.6).float() if masked else torch.ones(B, T)
    return tokens[:, :-1], tokens[:, 1:], mask


@pytest.mark.parametrize("method", list(PEFTS))
def test_chunks_give_the_whole_samples_loss_and_gradients(method):
    x, y, mask = batch()
    model = model_with(PEFTS[method])
    loss, grads = loss_and_grads(model, x, y, mask, 0)
    for chunk_ctx in (7, 16):                     # chunks that do and do not divide T = 40
        chunked_loss, chunked = loss_and_grads(model, x, y, mask, chunk_ctx)
        assert chunked_loss == pytest.approx(loss, rel=1e-6)
        assert chunked.keys() == grads.keys() and grads
        for name, g in grads.items():
            assert rel_err(chunked[name], g) < 1e-5, (method, chunk_ctx, name)


DROPOUT_PEFTS = {"lora": PeftConfig("lora", 8, alpha=16, dropout=0.5), "pissa": PeftConfig("pissa", 8, dropout=0.3)}


def draw_loss_and_grads(model, x, y, mask, chunk_ctx, draw):
    model.zero_grad(set_to_none=True)
    loss = sample_loss(model, x, y, mask, True, chunk_ctx, draw)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("method, grad_cp", [pytest.param("lora", False, marks=pytest.mark.slow),
                                             pytest.param("pissa", False, marks=pytest.mark.slow), ("lora", True)])
def test_chunks_draw_the_whole_samples_dropout_masks(method, grad_cp):
    """LoRA / PiSSA with dropout: the masks are keyed by token position, so the chunks (7 and 16 tokens,
    with and without gradient checkpointing inside them) give the whole sample's loss and gradients; a
    draw of another step gives another loss, and one without dropout another still (it does drop)."""
    x, y, mask = batch()
    model = model_with(DROPOUT_PEFTS[method], grad_cp=grad_cp)
    draw = DropoutDraw(seed=11, step=5)
    assert DropoutDraw.attach(model, draw) == 16
    loss, grads = draw_loss_and_grads(model, x, y, mask, 0, draw)
    for chunk_ctx in (7, 16):
        chunked_loss, chunked = draw_loss_and_grads(model, x, y, mask, chunk_ctx, draw)
        assert chunked_loss == pytest.approx(loss, rel=1e-6), chunk_ctx
        assert chunked.keys() == grads.keys() and grads
        for name, g in grads.items():
            assert rel_err(chunked[name], g) < 1e-5, (method, chunk_ctx, name)
    draw.step = 6
    assert draw_loss_and_grads(model, x, y, mask, 7, draw)[0] != pytest.approx(loss, rel=1e-4)
    draw.step = 5
    model.eval()
    assert draw_loss_and_grads(model, x, y, mask, 7, draw)[0] != pytest.approx(loss, rel=1e-4)


def test_without_a_draw_chunks_draw_their_own_masks():
    """The reason for the draw: torch's dropout gives each chunk fresh masks, and the loss differs."""
    x, y, mask = batch()
    model = model_with(DROPOUT_PEFTS["lora"])
    torch.manual_seed(0)
    whole = loss_and_grads(model, x, y, mask, 0)[0]
    torch.manual_seed(0)
    assert loss_and_grads(model, x, y, mask, 7)[0] != pytest.approx(whole, rel=1e-4)


def test_gradients_cross_chunk_boundaries_and_masks_count_over_the_whole_sample():
    """A loss only on the last chunk still trains the first layer's state (it reaches back through the
    carried state), and a chunk with no counted token changes nothing but the count."""
    model = model_with(PEFTS["state"])
    x, y, _ = batch(masked=False)
    only_last = torch.zeros(2, 40)
    only_last[:, 32:] = 1
    _, grads = loss_and_grads(model, x, y, only_last, 8)
    assert grads["blocks.0.att.time_state"].abs().max() > 0
    _, whole = loss_and_grads(model, x, y, only_last, 0)
    assert rel_err(grads["blocks.0.att.time_state"], whole["blocks.0.att.time_state"]) < 1e-5


def test_with_gradient_checkpointing_inside_the_chunks():
    x, y, mask = batch()
    loss, grads = loss_and_grads(model_with(PEFTS["bone+state"]), x, y, mask, 0)
    cp_loss, cp_grads = loss_and_grads(model_with(PEFTS["bone+state"], grad_cp=True), x, y, mask, 16)
    assert cp_loss == pytest.approx(loss, rel=1e-6)
    for name, g in grads.items():
        assert rel_err(cp_grads[name], g) < 1e-5, name


def held_bytes(model, T: int, chunk_ctx: int) -> int:
    x, y, mask = batch(T=T, B=1, masked=False)
    with HeldMemory() as held:
        loss = sample_loss(model, x, y, mask, True, chunk_ctx)
    nbytes = held.bytes()
    loss.backward()
    return nbytes


def test_the_forward_keeps_only_the_states_between_chunks():
    """From ctx_len 64 to 256 in chunks of 32, what the forward keeps for the backward grows by the six
    added boundary states (and a few scalars), while the whole-sample forward keeps ~4x more."""
    model = model_with(PEFTS["bone"])
    whole = held_bytes(model, 256, 0) - held_bytes(model, 64, 0)
    chunked = held_bytes(model, 256, 32) - held_bytes(model, 64, 32)
    states = (256 // 32 - 64 // 32) * boundary_bytes(CONFIG, 1, 4)
    assert states <= chunked <= states * 1.05 + 4096, (chunked, states)
    assert whole > 20 * chunked


@pytest.mark.slow
def test_train_py_with_chunk_ctx_follows_the_whole_sample_run(tiny_fp32_checkpoint, sample_data, tmp_path):
    """Several optimizer steps through train.py (ZeRO-2, fp32, CPU): the same losses at every step (1e-5)
    and the same trained adapter and state, with and without --chunk_ctx. --adam_eps 1 makes each step
    about lr x gradient (Adam would otherwise divide near-zero gradients by their own size and magnify
    their rounding); the zero-initialised weights are then the sum of four steps, each as exact as its
    gradient (1e-5, checked step by step in the next test), so they agree to a few 1e-5."""
    curves, tensors = {}, {}
    for chunk in (0, 12):
        proj = tmp_path / f"chunk{chunk}"
        values = flags(tiny_fp32_checkpoint, sample_data, proj, epoch_steps=4, warmup_steps=0, train_state=1,
                       chunk_ctx=chunk, ctx_len=32, micro_bsz=2, adam_eps=1.0, lr_init=3.0, lr_final=3.0)
        run(config_from_values({}, values))
        curves[chunk] = [float(r["loss"]) for r in csv.DictReader(open(Path(proj) / "metrics.csv"))]
        tensors[chunk] = read_adapter(proj / "checkpoint-000004").tensors
    assert len(curves[0]) == 4 and curves[12] == pytest.approx(curves[0], rel=1e-5)
    assert tensors[12].keys() == tensors[0].keys()
    assert any(k.endswith("time_state") for k in tensors[0])
    for name, t in tensors[0].items():
        assert rel_err(tensors[12][name], t) < 5e-5, name


@pytest.mark.slow
def test_train_py_with_lora_dropout_and_chunk_ctx_follows_the_whole_sample_run(tiny_fp32_checkpoint, sample_data,
                                                                              tmp_path):
    """--lora_dropout 0.5: the chunked run's losses are the unchunked run's at every step (each chunk draws
    the whole sample's dropout masks), and the trained adapters agree."""
    curves, tensors = {}, {}
    for chunk in (0, 8):
        proj = tmp_path / f"chunk{chunk}"
        values = flags(tiny_fp32_checkpoint, sample_data, proj, epoch_steps=3, warmup_steps=0, peft="lora", peft_r=8,
                       lora_alpha=16, lora_dropout=0.5, chunk_ctx=chunk, ctx_len=32, micro_bsz=2, adam_eps=1.0,
                       lr_init=1.0, lr_final=1.0)
        run(config_from_values({}, values))
        curves[chunk] = [float(r["loss"]) for r in csv.DictReader(open(Path(proj) / "metrics.csv"))]
        tensors[chunk] = read_adapter(proj / "checkpoint-000003").tensors
    assert len(curves[0]) == 3 and curves[8] == pytest.approx(curves[0], rel=1e-5)
    for name, t in tensors[0].items():
        assert rel_err(tensors[8][name], t) < 5e-5, name


def test_every_steps_gradients_agree_over_several_steps():
    """Four AdamW steps on the whole-sample gradients; at each, the chunked gradients of the same weights
    equal them (1e-5), so the equality holds along a training run, not just at the initial weights."""
    model = model_with(PEFTS["bone+state"])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    for step in range(4):
        x, y, mask = batch(seed=step)
        loss, grads = loss_and_grads(model, x, y, mask, 0)
        chunked_loss, chunked = loss_and_grads(model, x, y, mask, 12)
        assert chunked_loss == pytest.approx(loss, rel=1e-6)
        for name, g in grads.items():
            assert rel_err(chunked[name], g) < 1e-5, (step, name)
        for (name, p) in ((n, p) for n, p in model.named_parameters() if p.requires_grad):
            p.grad = grads[name]
        optimizer.step()


@pytest.mark.slow
def test_the_cuda_kernels_source_in_chunks():
    """cuda_emulated (bf16, the kernel's own source): the initial state in and the final state out carry
    their gradients across chunks as the whole sample does."""
    x, y, mask = batch(T=24, B=1)
    model = model_with(PEFTS["bone+state"]).to(torch.bfloat16)
    model.set_runtime(wkv_backend="cuda_emulated")
    loss, grads = loss_and_grads(model, x, y, mask, 0)
    chunked_loss, chunked = loss_and_grads(model, x, y, mask, 8)
    reference = model_with(PEFTS["bone+state"]).double()
    ref_loss, ref_grads = loss_and_grads(reference, x, y, mask, 0)
    assert chunked_loss == pytest.approx(loss, rel=2e-2) and loss == pytest.approx(ref_loss, rel=2e-2)
    for name in ("blocks.0.att.time_state", "blocks.1.att.key.bone"):
        assert rel_err(chunked[name].double(), grads[name].double()) < 5e-2, name
        assert rel_err(chunked[name].double(), ref_grads[name]) < 1e-1, name
