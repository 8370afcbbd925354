"""src/train/trainer.py, assemble.py and module.py (train.py): whole runs, real Lightning + DeepSpeed ZeRO on the
CPU with the tiny model.

In-process runs use `src.train.trainer`; runs that must be killed, interrupted or launched on
two processes are subprocesses of `train.py` with a clean environment (slow tier)."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import src.train.assemble as assemble_py
import src.train.infctx as infctx_py
import src.train.module as module_py
import src.train.trainer as trainer_py
from src.model import RWKV6Config
from src.model import init_rwkv6
from src.peft import PeftConfig, apply_peft, read_adapter
from src.train import L2Wrap, config_from_values, lr_at, main, masked_cross_entropy, run, training_loss
from src.utils.paths import REPO_ROOT as REPO
from tests.helpers import rel_err


def flags(base, data, proj_dir, **changes) -> dict:
    """A short ZeRO-2 fp32 CPU run of the tiny model."""
    values = {"load_model": str(base), "data_file": str(data), "proj_dir": str(proj_dir), "gpus": 0,
              "strategy": "deepspeed_stage_2", "precision": "fp32", "ctx_len": 32, "micro_bsz": 4,
              "epoch_steps": 16, "epoch_count": 1, "lr_init": 3e-3, "lr_final": 1e-3, "warmup_steps": 2,
              "peft": "bone", "peft_r": 16, "grad_cp": 1, "seed": 7, "progress_bar": 0}
    values.update(changes)
    if values["peft"] == "none":                         # adapter flags do not apply to full fine-tuning
        values.pop("peft_r")
    return values


def as_argv(values: dict) -> list[str]:
    return [f"--{k}={v}" for k, v in values.items()]


def losses(proj_dir) -> list[float]:
    return [float(r["loss"]) for r in csv.DictReader(open(Path(proj_dir) / "metrics.csv"))]


def clean_env() -> dict:
    """No inherited launcher variables (LOCAL_RANK, MASTER_PORT, ...) and one thread per process."""
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR", "LANG") if k in os.environ}
    return {**keep, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_subprocess(values: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *as_argv(values)], cwd=REPO, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


# ------------------------------------------------------------------ pieces

def test_lr_schedule():
    cfg = config_from_values({}, {"lr_init": 1e-3, "lr_final": 1e-4, "warmup_steps": 4, "epoch_steps": 24})
    assert [lr_at(s, cfg) for s in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lr_at(4, cfg) == pytest.approx(1e-3) and lr_at(23, cfg) == pytest.approx(1e-4)
    assert lr_at(4 + 19 / 2, cfg) == pytest.approx(5.5e-4)                         # cosine: half way
    cfg.lr_schedule = "exp"
    assert lr_at(4 + 19 / 2, cfg) == pytest.approx(math.sqrt(1e-3 * 1e-4))          # exponential: geometric mean
    assert lr_at(23, cfg) == pytest.approx(1e-4)
    cfg.lr_schedule = "constant"
    assert lr_at(23, cfg) == 1e-3


def test_masked_cross_entropy_and_l2wrap():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (2, 5), generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.float64)
    reference = F.cross_entropy(logits.flatten(0, 1), targets.masked_fill(mask == 0, -100).flatten())
    assert masked_cross_entropy(logits, targets, mask).item() == pytest.approx(reference.item(), rel=1e-12)
    loss = masked_cross_entropy(logits, targets, mask)
    (grad,) = torch.autograd.grad(L2Wrap.apply(loss, logits), logits)
    (plain,) = torch.autograd.grad(masked_cross_entropy(logits, targets, mask), logits)
    extra = torch.zeros_like(logits)
    top, ids = logits.detach().max(-1, keepdim=True)
    extra.scatter_(-1, ids, top * 1e-4 / 10)                     # RWKV-LM: 1e-4 / (B * T) * max logit
    assert torch.allclose(grad, plain + extra, rtol=0, atol=1e-15)
    for l2wrap, expected in ((True, grad), (False, plain)):     # the fused loss: the same value and gradient
        fused = training_loss(logits, targets, mask, l2wrap)
        (fused_grad,) = torch.autograd.grad(fused * 1.0, logits)
        assert fused.item() == pytest.approx(reference.item(), rel=1e-12)
        assert torch.allclose(fused_grad, expected, rtol=0, atol=1e-15)
    (scaled,) = torch.autograd.grad(3.0 * training_loss(logits, targets, mask), logits)
    assert torch.allclose(scaled, 3.0 * grad, rtol=0, atol=1e-14)


def test_gradient_checkpointing_with_adapters_gives_the_same_gradients():
    config = RWKV6Config(n_layer=3, n_embd=128, vocab_size=100)
    idx = torch.randint(0, 100, (2, 24), generator=torch.Generator().manual_seed(0))
    grads = {}
    for grad_cp in (False, True):
        model = apply_peft(init_rwkv6(config.replace(grad_cp=grad_cp), seed=5, nonzero=True),
                           PeftConfig(method="lora", r=8), verbose=False).train()
        assert not model.emb.weight.requires_grad          # frozen embeddings: block 0's input needs no grad
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():                              # LoRA's B starts at 0, which would zero A's gradient
            for p in (p for p in model.parameters() if p.requires_grad):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        loss = F.cross_entropy(model(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten())
        loss.backward()
        grads[grad_cp] = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert grads[True].keys() == grads[False].keys() and len(grads[True]) > 0
    for name, g in grads[False].items():
        assert g.abs().max() > 0 and rel_err(grads[True][name], g) < 1e-5, name


# ------------------------------------------------------------------ training runs

def sample_loss(model, data, n: int = 16) -> float:
    """Mean loss on n fixed windows (a seed no run uses)."""
    from src.data import BinIdx, TokenDataset
    ds = TokenDataset(BinIdx(data), "binidx", ctx_len=32, seed=12345, micro_bsz=n, num_batches=1)
    x, y, mask = (torch.stack(t) for t in zip(*[ds[j] for j in range(n)]))
    with torch.no_grad():
        return masked_cross_entropy(model(x), y, mask).item()


@pytest.mark.parametrize("method", ["bone", *(pytest.param(m, marks=pytest.mark.slow)
                                             for m in ("bat-out", "bat-in", "lora", "pissa"))])
def test_loss_falls(method, tiny_fp32_checkpoint, sample_data, tmp_path):
    from src.model import load_rwkv6
    from src.peft import load_adapter
    peft, _, layout = method.partition("-")
    extra = {"bat_index": layout} if layout else {}
    if peft in ("lora", "pissa"):
        extra.update(peft_r=8, lora_alpha=16)
    values = flags(tiny_fp32_checkpoint, sample_data, tmp_path / method, peft=peft, lr_init=1e-2, lr_final=3e-3,
                   **extra)
    result = run(config_from_values({}, values))
    assert result["steps"] == 16 and not result["stopped_early"]
    curve = losses(tmp_path / method)
    assert len(curve) == 16 and all(math.isfinite(x) for x in curve)
    assert sum(curve[-4:]) < sum(curve[:4]), curve
    adapter = read_adapter(tmp_path / method / "checkpoint-000016")
    assert adapter.config.method == peft and adapter.step == 16
    before = sample_loss(load_rwkv6(tiny_fp32_checkpoint), sample_data)
    after = sample_loss(load_adapter(load_rwkv6(tiny_fp32_checkpoint), adapter), sample_data)
    assert after < before - 0.3, (method, before, after)
    assert (tmp_path / method / "loss.png").stat().st_size > 1000


@pytest.mark.slow
def test_outputs_of_a_run(tiny_fp32_checkpoint, sample_data, tmp_path, monkeypatch, capsys):
    reads = []
    close = module_py.RWKVTrainingModule._close_window
    monkeypatch.setattr(module_py.RWKVTrainingModule, "_close_window", lambda self: reads.append(1) or close(self))
    values = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "run", epoch_steps=3, epoch_count=3,
                   accumulate_grad_batches=2, micro_bsz=2, keep_trainer_states=2, lr_final=None)
    run(config_from_values({}, values))
    assert len(reads) == 9                                   # the loss is read once per optimizer step, not per micro-batch
    assert "derived: lr_final 0.0003 (lr_init / 10)" in capsys.readouterr().out
    proj = tmp_path / "run"
    recorded = json.loads((proj / "train_config.json").read_text())
    assert recorded["lr_final"] == pytest.approx(3e-4) and recorded["derived"] == {
        "lr_final": "lr_init / 10", "peft_targets": "the linear layers of RWKV-6's blocks"}
    assert (recorded["peft"], recorded["peft_r"], recorded["accumulate_grad_batches"]) == ("bone", 16, 2)
    assert sorted(p.name for p in proj.iterdir()) == ["checkpoint-000003", "checkpoint-000006", "checkpoint-000009",
                                                       "loss.png", "metrics.csv", "train_config.json"]
    assert not (proj / "checkpoint-000003" / "trainer_state").exists()          # only the newest 2 keep it
    assert (proj / "checkpoint-000009" / "trainer_state").is_dir()
    rows = list(csv.DictReader(open(proj / "metrics.csv")))
    assert list(rows[0]) == ["step", "loss", "lr", "tokens_per_s", "tokens", "elapsed_s", "val_loss"]
    assert [int(r["step"]) for r in rows] == list(range(1, 10))
    assert int(rows[-1]["tokens"]) == 9 * 2 * 2 * 32 and all(float(r["tokens_per_s"]) > 0 for r in rows)
    assert [float(r["lr"]) for r in rows[:2]] == pytest.approx([1.5e-3, 3e-3])


def test_checkpoints_hold_the_fp32_master_weights(tiny_fp32_checkpoint, sample_data, tmp_path):
    """Under bf16, DeepSpeed trains fp32 master copies; a checkpoint writes those, not the bf16 working copies."""
    values = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "run", precision="bf16", epoch_steps=2,
                   warmup_steps=0, ctx_len=16, micro_bsz=2, train_parts="ln_x", lr_init=1e-2, lr_final=1e-2)
    run(config_from_values({}, values))
    tensors = read_adapter(tmp_path / "run" / "checkpoint-000002").tensors
    ln = tensors["blocks.0.att.ln_x.weight"]
    assert ln.dtype == torch.float32 and {t.dtype for t in tensors.values()} == {torch.float32}
    assert not torch.equal(ln, ln.to(torch.bfloat16).float()), "the saved values are bf16-rounded"


@pytest.mark.slow
def test_zero3_checkpoints_gather_partitioned_adapters(tiny_fp32_checkpoint, sample_data, tmp_path, monkeypatch):
    """Under ZeRO-3, a parameter above DeepSpeed's persistence threshold (100k elements: Bone r=64 on 3B)
    is partitioned and its module holds an empty tensor. With the threshold at 0 every adapter is."""
    make = assemble_py.make_strategy

    def every_parameter_partitioned(*args):
        strategy = make(*args)
        strategy.config["zero_optimization"]["stage3_param_persistence_threshold"] = 0
        return strategy

    monkeypatch.setattr(assemble_py, "make_strategy", every_parameter_partitioned)
    values = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "run", strategy="deepspeed_stage_3", epoch_steps=2,
                   warmup_steps=0, chunk_ctx=16, head_chunk=24)     # and infctx and head chunks under ZeRO-3
    run(config_from_values({}, values))
    # torch's own linear is still in place: DeepSpeed's replacement would stay for the rest of the process,
    # saving every linear's input (a later Bone model, or the planner's trace, would keep more)
    assert torch.nn.functional.linear is torch._C._nn.linear
    adapter = read_adapter(tmp_path / "run" / "checkpoint-000002")
    assert {tuple(t.shape) for t in adapter.tensors.values()} == {(16, 128), (16, 448)}
    assert all(t.abs().max() > 0 for t in adapter.tensors.values())      # trained, not the zero init


@pytest.mark.slow
def test_random_init_is_saved_as_base_and_merges(sample_data, tmp_path):
    from src.peft.merge import main as merge_main
    proj = tmp_path / "run"
    values = flags("", sample_data, proj, model="tiny", load_model="", epoch_steps=4, warmup_steps=1)
    run(config_from_values({}, values))
    assert (proj / "base.pth").is_file()
    from src.model import load_model
    from src.model.init import init_model
    from src.utils.files import file_fingerprint
    saved, made = load_model(proj / "base.pth").state_dict(), init_model(RWKV6Config.preset("tiny"), seed=7).state_dict()
    assert saved.keys() == made.keys() and all(torch.equal(saved[k], made[k]) for k in made)   # the init trained on
    assert read_adapter(proj / "checkpoint-000004").base_fingerprint == file_fingerprint(proj / "base.pth")
    assert merge_main(["--base", str(proj / "base.pth"), "--bone", str(proj), "--output", str(tmp_path / "m.pth"),
                       "--check"]) == 0


@pytest.mark.slow
def test_full_fine_tuning_writes_a_model(tiny_fp32_checkpoint, sample_data, tmp_path):
    from src.model import load_rwkv6
    values = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "full", peft="none", epoch_steps=3,
                   warmup_steps=1, lr_init=1e-4, lr_final=1e-4)
    run(config_from_values({}, values))
    trained = load_rwkv6(tmp_path / "full" / "checkpoint-000003" / "model.pth")
    base = load_rwkv6(tiny_fp32_checkpoint)
    assert not torch.equal(trained.blocks[0].att.key.weight, base.blocks[0].att.key.weight)


def test_refuses_to_start_over_a_run(tiny_fp32_checkpoint, sample_data, tmp_path, capsys):
    values = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "run", epoch_steps=2, warmup_steps=1)
    assert main(as_argv(values)) == 0
    assert main(as_argv(values)) == 2
    assert "already holds checkpoints of a run; pass --resume to continue it" in capsys.readouterr().err
    assert main(as_argv({**values, "resume": "latest", "peft_r": 8})) == 2
    assert "--peft_r 8 here, 16 in the checkpoint" in capsys.readouterr().err
    assert main(as_argv({**values, "proj_dir": tmp_path / "other", "resume": "latest"})) == 2
    assert "holds no checkpoint with a trainer_state/ to resume from" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_fp32_checkpoint, sample_data, tmp_path,
                                                           monkeypatch, capsys):
    calls = []

    def poisoned(logits, targets, mask, l2wrap, **pieces):
        loss = training_loss(logits, targets, mask, l2wrap, **pieces)
        if not torch.is_grad_enabled():                 # the checkpoint's finiteness check: not a training step
            return loss
        calls.append(1)
        return loss * float("nan") if len(calls) == 7 else loss

    monkeypatch.setattr(infctx_py, "training_loss", poisoned)
    values = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "run", epoch_steps=3, epoch_count=4)
    assert main(as_argv(values)) == 3
    err = capsys.readouterr().err
    assert "the loss became nan at step 7" in err
    assert f"The newest checkpoint, {tmp_path / 'run' / 'checkpoint-000006'}, holds weights whose loss is finite" in err
    assert [p.name for p in sorted((tmp_path / "run").glob("checkpoint-*"))] == ["checkpoint-000003",
                                                                                "checkpoint-000006"]
    assert not list((tmp_path / "run").glob(".*tmp*"))


def test_out_of_memory_gives_advice(monkeypatch, capsys):
    def oom(cfg):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(trainer_py, "run", oom)
    assert main(["--model", "tiny"]) == 4
    err = capsys.readouterr().err
    assert "--grad_cp 1" in err and "--micro_bsz" in err and "offload" in err


# ------------------------------------------------------------------ processes: kill, Ctrl-C, two ranks

def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"train.py exited ({proc.returncode}) before {path} appeared:\n{proc.stdout.read()}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear in {timeout}s")
        time.sleep(0.02)


@pytest.mark.slow
def test_resume_after_kill_equals_the_uninterrupted_run(tiny_fp32_checkpoint, sample_data, tmp_path):
    common = dict(epoch_steps=4, epoch_count=3, peft="lora", peft_r=8, lora_alpha=16, lora_dropout=0.1)
    straight = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "straight", **common)
    run(config_from_values({}, straight))

    killed = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "killed", **common)
    proc = train_subprocess(killed)
    wait_for(tmp_path / "killed" / "checkpoint-000004", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [p.name for p in sorted((tmp_path / "killed").glob("checkpoint-*"))]
    assert "checkpoint-000012" not in done, "the run finished before it was killed"
    proc = train_subprocess({**killed, "resume": "latest"})
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "resuming from" in out

    a, b = losses(tmp_path / "straight"), losses(tmp_path / "killed")
    assert len(a) == len(b) == 12
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-5, (a, b)
    ours = read_adapter(tmp_path / "killed" / "checkpoint-000012").tensors
    theirs = read_adapter(tmp_path / "straight" / "checkpoint-000012").tensors
    assert ours.keys() == theirs.keys()
    assert max(rel_err(ours[k], theirs[k]) for k in ours) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_saves_then_exits(tiny_fp32_checkpoint, sample_data, tmp_path, signum):
    """The signal arrives at whatever moment of a step the process is in (test_stop.py sends it at chosen ones)."""
    values = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "run", epoch_steps=1000, epoch_save=100)
    proc = train_subprocess(values)
    metrics = tmp_path / "run" / "metrics.csv"
    deadline = time.time() + 240
    while len(metrics.read_text().splitlines()) < 4 if metrics.exists() else True:   # 3 steps done
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "stopped early at step" in out
    assert f"[{signal.Signals(signum).name}] stopping after this step" in out
    saved = [p for p in (tmp_path / "run").glob("checkpoint-*")]
    assert len(saved) == 1 and (saved[0] / "trainer_state").is_dir()
    step = int(saved[0].name.split("-")[1])
    assert 3 <= step < 1000 and len(losses(tmp_path / "run")) == step
    assert (tmp_path / "run" / "loss.png").is_file()


@pytest.mark.slow
def test_ctrl_c_while_starting_and_twice_while_training(tiny_fp32_checkpoint, sample_data, tmp_path):
    # The signal is sent at once, blocked in the child until train.py has its handler in place (it then
    # unblocks the stop signals): it arrives while the imports are still to come, whatever the load.
    proc = train_subprocess(flags(tiny_fp32_checkpoint, sample_data, tmp_path / "early"),
                            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}))
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and out.strip().splitlines()[-1] == \
        "train.py: interrupted while starting; nothing was written"
    values = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "run", epoch_steps=1000, epoch_save=100,
                   ctx_len=512, micro_bsz=4, grad_cp=0)         # steps long enough for two signals within one
    proc = train_subprocess(values)
    metrics = tmp_path / "run" / "metrics.csv"
    deadline = time.time() + 240
    while len(metrics.read_text().splitlines()) < 3 if metrics.exists() else True:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    seen = []
    for line in proc.stdout:                                 # the first was taken: the run says so
        seen.append(line)
        if line.startswith("[SIGINT] stopping after this step"):
            break
    assert seen and seen[-1].startswith("[SIGINT]"), "".join(seen)
    proc.send_signal(signal.SIGINT)                          # the step, a check and a save are still to come
    out, _ = proc.communicate(timeout=120)
    out = "".join(seen) + out
    assert proc.returncode == 2, out
    assert out.strip().splitlines()[-1].startswith("train.py: stopped at once (a second Ctrl-C)")
    assert not list((tmp_path / "run").glob(".*tmp*"))


@pytest.mark.slow
def test_zero2_on_two_processes_equals_one_process(tiny_fp32_checkpoint, sample_data, tmp_path):
    """2 ranks x micro_bsz 1 see the samples of 1 rank x micro_bsz 2: same losses, same adapter."""
    common = dict(epoch_steps=6, warmup_steps=1, peft="bat", peft_r=16)
    one = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "one", micro_bsz=2, **common)
    two = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "two", micro_bsz=1, devices=2, **common)
    for values in (one, two):
        proc = train_subprocess(values)
        out, _ = proc.communicate(timeout=400)
        assert proc.returncode == 0, out
    assert "MEMBER: 2/2" in out
    shards = list((tmp_path / "two" / "checkpoint-000006" / "trainer_state").rglob("*optim_states.pt"))
    assert len(shards) == 2, "ZeRO-2 writes one optimizer shard per rank"
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(a) == len(b) == 6 and max(abs(x - y) for x, y in zip(a, b)) < 1e-4, (a, b)
    ours = read_adapter(tmp_path / "two" / "checkpoint-000006").tensors
    theirs = read_adapter(tmp_path / "one" / "checkpoint-000006").tensors
    assert max(rel_err(ours[k], theirs[k]) for k in ours) < 1e-3
