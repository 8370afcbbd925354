"""src/train/resume.py and the run's stops: what a resumed run may change, abandoned checkpoints, damaged
trainer states and metrics, runs that stop because training went wrong (NaN, nothing to learn)."""

import csv
import json
import shutil

import pytest

from src.peft import find_adapter
from src.train import main
from tests.train.test_trainer import as_argv, flags


def rows(proj):
    return list(csv.DictReader(open(proj / "metrics.csv")))


@pytest.fixture(scope="module")
def finished_once(tiny_fp32_checkpoint, sample_data, tmp_path_factory):
    """A run of 3 epochs x 2 steps whose three checkpoints all keep their trainer state."""
    values = flags(tiny_fp32_checkpoint, sample_data, tmp_path_factory.mktemp("finished") / "run", epoch_steps=2,
                   epoch_count=3, keep_trainer_states=3, warmup_steps=0)
    assert main(as_argv(values)) == 0
    return values


@pytest.fixture
def finished(finished_once, tmp_path, capsys):
    """A copy of that run in this test's tmp_path/run."""
    shutil.copytree(finished_once["proj_dir"], tmp_path / "run")
    capsys.readouterr()
    return {**finished_once, "proj_dir": tmp_path / "run"}


@pytest.mark.parametrize("change, message", [
    ({"ctx_len": 64}, "--ctx_len 64 here, 32 in the checkpoint"),
    ({"micro_bsz": 2}, "--micro_bsz 2 here, 4 in the checkpoint"),
    ({"peft": "lora", "peft_r": 8}, "--peft 'lora' here, 'bone' in the checkpoint; --peft_r 8 here, 16 in the checkpoint"),
    ({"peft_targets": "att.key"}, "--peft_targets ['att.key'] here"),
    ({"seed": 1}, "--seed 1 here, 7 in the checkpoint"),
    ({"data_type": "pad"}, "--data_type 'pad' here, 'binidx' in the checkpoint"),
])
def test_resume_refuses_a_changed_run(finished, change, message, capsys):
    assert main(as_argv({**finished, "resume": "latest", **change})) == 2
    err = capsys.readouterr().err
    assert message in err and "start a new --proj_dir to change them" in err and len(err.strip().splitlines()) == 1


def test_resume_refuses_other_data(finished, tmp_path, capsys):
    other = tmp_path / "other"
    for ext in (".bin", ".idx"):
        (tmp_path / f"other{ext}").write_bytes(open(f"{finished['data_file']}{ext}", "rb").read())
    assert main(as_argv({**finished, "resume": "latest", "data_file": other})) == 2
    assert f"--data_file '{other}' here" in capsys.readouterr().err


def test_resume_applies_a_changed_schedule_and_length(finished, tmp_path, capsys):
    proj = tmp_path / "run"
    changed = {**finished, "resume": "latest", "lr_init": 1e-3, "lr_final": 1e-4, "epoch_count": 4}
    assert main(as_argv(changed)) == 0
    out = capsys.readouterr().out
    assert "resuming with changed settings: --epoch_count 4 (was 3), --lr_init 0.001 (was 0.003), " \
           "--lr_final 0.0001 (was 0.001)" in out
    lrs = [float(r["lr"]) for r in rows(proj)]
    assert len(lrs) == 8 and lrs[6:] == pytest.approx([1e-4 + 0.5 * 9e-4 * (1 + math_cos(6 / 7)), 1e-4])
    recorded = json.loads((proj / "train_config.json").read_text())
    assert (recorded["lr_init"], recorded["epoch_count"]) == (1e-3, 4)
    assert json.loads((proj / "checkpoint-000008" / "train_config.json").read_text())["lr_init"] == 1e-3


def math_cos(fraction):
    import math
    return math.cos(math.pi * fraction)


def test_resuming_an_older_checkpoint_moves_the_newer_aside(finished, tmp_path, capsys):
    proj = tmp_path / "run"
    assert main(as_argv({**finished, "resume": str(proj / "checkpoint-000002")})) == 0
    out = capsys.readouterr().out
    abandoned = [d for d in proj.iterdir() if d.name.startswith("abandoned-")]
    assert len(abandoned) == 1 and f"the newer checkpoints were moved to {abandoned[0]}" in out
    assert sorted(d.name for d in abandoned[0].iterdir()) == ["checkpoint-000004", "checkpoint-000006"]
    assert sorted(d.name for d in proj.glob("checkpoint-*")) == ["checkpoint-000002", "checkpoint-000004",
                                                                  "checkpoint-000006"]
    assert [int(r["step"]) for r in rows(proj)] == [1, 2, 3, 4, 5, 6]
    assert find_adapter(proj).name == "checkpoint-000006" and find_adapter(proj).parent == proj


def test_a_truncated_trainer_state_is_named(finished, tmp_path, capsys):
    proj = tmp_path / "run"
    (shard,) = [p for p in (proj / "checkpoint-000006" / "trainer_state").rglob("*optim_states.pt")]
    shard.write_bytes(shard.read_bytes()[:100])
    assert main(as_argv({**finished, "resume": "latest"})) == 2
    err = capsys.readouterr().err
    assert f"{shard} is truncated or damaged" in err and f"--resume {proj / 'checkpoint-000004'}" in err


@pytest.mark.parametrize("content, message", [
    ("step,loss\n1,2.0\n", "its header lacks ['lr', 'tokens_per_s', 'tokens', 'elapsed_s']"),
    ("step,loss,lr,tokens_per_s,tokens,elapsed_s\n1,2,3,4,5,6\nx,2,3,4,5,6\n", "line 3 has the step 'x'"),
])
def test_a_malformed_metrics_file_stops_the_resume(finished, tmp_path, capsys, content, message):
    (tmp_path / "run" / "metrics.csv").write_text(content)
    assert main(as_argv({**finished, "resume": "latest"})) == 2
    err = capsys.readouterr().err
    assert "metrics.csv cannot be continued" in err and message in err


@pytest.mark.slow
def test_a_nan_stop_keeps_only_checkpoints_a_resume_can_use(tiny_fp32_checkpoint, sample_data, tmp_path, capsys):
    """lr 1e10: the weights after a step give a non-finite loss; they are never saved, and resuming (or, with
    no checkpoint, starting again) with a sane lr works."""
    values = flags(tiny_fp32_checkpoint, sample_data, tmp_path / "run", lr_init=1e10, lr_final=1e10, warmup_steps=0,
                   epoch_steps=1, epoch_count=10)
    assert main(as_argv(values)) == 3
    err = capsys.readouterr().err
    assert "give a non-finite loss on the data of step" in err or "the loss became nan" in err
    saved = sorted((tmp_path / "run").glob("checkpoint-*"))
    sane = {**values, "lr_init": 1e-3, "lr_final": 1e-4}
    if saved:
        assert f"The newest checkpoint, {saved[-1]}" in err
        assert main(as_argv({**sane, "resume": "latest"})) == 0
    else:
        assert "No checkpoint was saved: start again (without --resume, with --overwrite)" in err
        assert main(as_argv({**sane, "overwrite": 1})) == 0
    assert len(rows(tmp_path / "run")) == 10


@pytest.mark.slow
def test_pissa_on_a_random_base_stops_with_the_reason(sample_data, tmp_path, capsys):
    values = flags("", sample_data, tmp_path / "run", model="tiny", load_model="", peft="pissa", peft_r=8,
                   epoch_steps=3, warmup_steps=0)
    assert main(as_argv(values)) == 3
    err = capsys.readouterr().err
    assert "every trainable parameter got an exactly zero gradient at step 1" in err and "--load_model" in err
    assert not list((tmp_path / "run").glob("checkpoint-*"))


@pytest.mark.slow
def test_a_stopped_runs_files_and_base_are_replaced_only_with_overwrite(sample_data, tmp_path, capsys):
    values = flags("", sample_data, tmp_path / "run", model="tiny", load_model="", epoch_steps=1, warmup_steps=0)
    assert main(as_argv(values)) == 0
    for p in (tmp_path / "run").glob("checkpoint-*"):
        p.rename(tmp_path / p.name)                           # as if the run had stopped before saving
    base = (tmp_path / "run" / "base.pth").read_bytes()
    assert main(as_argv({**values, "seed": 8})) == 2
    assert "base.pth was made for another run (seed 7 there, 8 here): choose another --proj_dir, or pass " \
           "--overwrite to make a new one" in capsys.readouterr().err
    assert main(as_argv(values)) == 2
    assert "holds files of an earlier run (train_config.json, metrics.csv, loss.png) and no checkpoint: pass " \
           "--overwrite" in capsys.readouterr().err
    assert main(as_argv({**values, "overwrite": 1})) == 0    # the same model and seed: its base is reused
    assert (tmp_path / "run" / "base.pth").read_bytes() == base
    for p in (tmp_path / "run").glob("checkpoint-*"):
        p.rename(tmp_path / f"again-{p.name}")
    assert main(as_argv({**values, "seed": 8, "overwrite": 1})) == 0
    assert (tmp_path / "run" / "base.pth").read_bytes() != base
    assert json.loads((tmp_path / "run" / "base.json").read_text())["seed"] == 8
    from src.peft import read_adapter
    from src.utils.files import file_fingerprint                 # the adapter names the new base, not the one replaced
    assert read_adapter(tmp_path / "run" / "checkpoint-000001").base_fingerprint == \
        file_fingerprint(tmp_path / "run" / "base.pth")


def test_a_resume_never_writes_over_its_own_config(finished, tmp_path, capsys):
    config = tmp_path / "run" / "train_config.json"
    assert main(["--config", str(config), "--proj_dir", str(tmp_path / "run"), "--resume", "latest",
                 "--epoch_count", "4"]) == 2
    assert "is the train_config.json this run writes; copy it elsewhere" in capsys.readouterr().err


def test_a_refused_resume_changes_nothing(finished, tmp_path, capsys):
    proj = tmp_path / "run"
    (proj / "checkpoint-000002" / "adapter.pth").unlink()
    before = sorted(str(p.relative_to(proj)) for p in proj.rglob("*"))
    config = (proj / "train_config.json").read_text()
    assert main(as_argv({**finished, "resume": str(proj / "checkpoint-000002")})) == 2
    assert "adapter.pth is missing" in capsys.readouterr().err
    assert sorted(str(p.relative_to(proj)) for p in proj.rglob("*")) == before
    assert (proj / "train_config.json").read_text() == config


def snapshot(directory):
    return {p: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def another_tiny_base(tmp_path_factory, tiny_config):
    """A base of the same shapes as the runs' (tiny), other weights."""
    import torch
    from src.model import init_model, save_rwkv6
    path = tmp_path_factory.mktemp("other") / "other.pth"
    save_rwkv6(init_model(tiny_config, seed=4, nonzero=True), path, dtype=torch.float32)
    return path


@pytest.mark.parametrize("base", ["random init of --model tiny", "another file of the same shapes"])
def test_a_resume_on_another_base_is_refused_naming_both(finished, tmp_path, capsys, another_tiny_base, base):
    """The adapter records its base's fingerprint; resuming it on another base (a random init, another
    file) is refused before anything is written."""
    from src.utils.files import file_fingerprint
    proj, trained_on = tmp_path / "run", finished["load_model"]
    if base.startswith("random"):
        change = {"load_model": "", "model": "tiny"}
        here = f"a new random init of --model tiny (no {proj / 'base.pth'} to reuse)"
    else:
        change = {"load_model": str(another_tiny_base)}
        here = f"--load_model {another_tiny_base} (fingerprint {file_fingerprint(another_tiny_base)})"
    before = snapshot(proj)
    assert main(as_argv({**finished, "resume": "latest", "epoch_count": 4, **change})) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"train.py: error: --resume {proj / 'checkpoint-000006'}: its adapter was trained on "
                           f"--load_model {trained_on} (fingerprint {file_fingerprint(trained_on)}), this run's base "
                           f"is {here}: resume with the base it was trained on")
    assert snapshot(proj) == before and not (proj / "base.pth").exists()


def test_a_finished_run_has_nothing_to_resume(finished, capsys):
    assert main(as_argv({**finished, "resume": "latest"})) == 2
    assert "is at step 6, and this run ends at step 6: nothing is left to train" in capsys.readouterr().err


@pytest.mark.slow
def test_an_rwkv7_run_resumed_on_a_random_rwkv6_base_writes_nothing(sample_data, tmp_path, capsys):
    """Targets both families have: the settings agree, the base does not; refused before any write."""
    import torch
    from src.model import RWKV7Config, init_rwkv7, save_rwkv7
    base7 = tmp_path / "v7.pth"
    save_rwkv7(init_rwkv7(RWKV7Config.preset("tiny"), seed=3, nonzero=True), base7, dtype=torch.float32)
    proj = tmp_path / "run"
    values = flags(base7, sample_data, proj, peft="lora", peft_r=8, peft_targets="att.key", epoch_steps=2,
                   warmup_steps=0)
    assert main(as_argv(values)) == 0
    capsys.readouterr()
    before = snapshot(proj)
    assert main(as_argv({**values, "load_model": "", "model": "tiny", "resume": "latest", "epoch_count": 2})) == 2
    err = capsys.readouterr().err
    assert f"its adapter was trained on --load_model {base7}" in err and \
        f"this run's base is a new random init of --model tiny (no {proj / 'base.pth'} to reuse)" in err
    assert len(err.strip().splitlines()) == 1
    assert snapshot(proj) == before


@pytest.mark.slow
def test_a_random_base_is_written_only_once_the_trainer_state_is_restored(sample_data, tmp_path, capsys):
    """Restoring the trainer state is a resume's last check, made as training starts: a resume that fails
    it leaves proj_dir as it was, without the random base it would have made."""
    proj = tmp_path / "run"
    values = flags("", sample_data, proj, model="tiny", load_model="", peft="none", epoch_steps=2, warmup_steps=0)
    assert main(as_argv(values)) == 0
    for name in ("base.pth", "base.json"):                         # a full fine-tuning keeps the whole model
        (proj / name).rename(tmp_path / name)
    latest = proj / "checkpoint-000002" / "trainer_state" / "latest"
    latest.rename(tmp_path / "latest")                             # DeepSpeed cannot tell which state to load
    before = snapshot(proj)
    resume = {**values, "resume": "latest", "epoch_count": 2}
    capsys.readouterr()
    assert main(as_argv(resume)) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]        # (before it, in-process: DeepSpeed's logger on an earlier test's stream)
    assert last.startswith("train.py: error: --resume ") and "trainer_state/ cannot be restored" in last
    assert snapshot(proj) == before
    (tmp_path / "latest").rename(latest)
    assert main(as_argv(resume)) == 0                             # restored: the base is made, then training goes on
    assert (proj / "base.pth").is_file() and len(rows(proj)) == 4
