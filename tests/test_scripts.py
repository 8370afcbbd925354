"""scripts/*.sh: a new user's path from a jsonl file to a merged .pth, with the scripts alone."""

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from src.peft import read_adapter
from src.train.config import parse_args, validate
from src.train.trainer import preflight
from src.utils.paths import REPO_ROOT as REPO

# train_<method>.sh: every adapter preset (state tuning and the dpo / grpo objectives have tests of their own)
METHODS = sorted(p.stem for p in (REPO / "configs" / "train").glob("*.json") if p.stem not in ("state", "dpo", "grpo"))


def script(name: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "LANG")}
    return subprocess.run(["bash", str(REPO / "scripts" / name), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_jsonl_to_merged_pth_with_the_scripts(tmp_path):
    """The one end-to-end test of the path: make_data.sh -> train_bone.sh -> merge.sh --check -> eval.sh,
    generate.sh."""
    (tmp_path / "mine.jsonl").write_text((REPO / "data" / "sample.jsonl").read_text())
    done = script("make_data.sh", "mine.jsonl", "data/mine", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = script("train_bone.sh", "--model", "tiny", "--data", "data/mine", "--proj_dir", "runs/bone", "--gpus", 0,
                  "--rank", 16, "--ctx_len", 32, "--micro_bsz", 2, "--steps", 3, "--lr", "1e-3", "--progress_bar", 0,
                  cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    proj = tmp_path / "runs" / "bone"
    assert "finished step 3" in done.stdout and (proj / "base.pth").is_file()
    assert len(list(csv.DictReader(open(proj / "metrics.csv")))) == 3
    adapter = read_adapter(proj / "checkpoint-000003")
    assert (adapter.config.method, adapter.config.r) == ("bone", 16)
    done = script("merge.sh", "--base", "runs/bone/base.pth", "--bone", "runs/bone", "--output", "merged.pth",
                  "--check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "merged 16 bone layers (r=16, step 3)" in done.stdout and (tmp_path / "merged.pth").is_file()
    rel = float(done.stdout.split("(")[-1].split(" of the largest")[0])
    assert rel < 1e-5
    # trying the result with the scripts, as the README does
    done = script("eval.sh", "--model", "merged.pth", "--data", "data/mine", "--ctx_len", 32, "--max_windows", 4,
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["tokens"] == 4 * 32
    done = script("generate.sh", "--model", "merged.pth", "--prompt", "The", "--max_tokens", 5, "--seed", 0,
                  cwd=tmp_path)
    assert done.returncode == 0 and done.stdout, done.stderr


@pytest.mark.slow
def test_a_bad_flag_is_one_line(tmp_path):
    done = script("train_lora.sh", "--model", "tiny", "--data", "nowhere", "--gpus", 0, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == "train.py: error: binidx data nowhere: nowhere.idx does not exist"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method", METHODS)
def test_each_script_reads_its_preset(method, sample_data, tmp_path):
    """train_<method>.sh = train.py with configs/train/<method>.json (the defaults the README documents:
    ctx_len 1024, micro_bsz 4, ZeRO-1, gradient checkpointing, bf16 on a GPU), then the user's flags."""
    text = (REPO / "scripts" / f"train_{method}.sh").read_text()
    assert f'--config "$REPO_ROOT/configs/train/{method}.json" "$@"' in text
    preset = ["--config", str(REPO / "configs" / "train" / f"{method}.json")]
    on_gpu = parse_args([*preset, "--gpus", "1"])
    assert (on_gpu.peft.method, on_gpu.precision, on_gpu.grad_cp, on_gpu.ctx_len, on_gpu.micro_bsz) == \
        (method, "bf16", True, 1024, 4)
    assert on_gpu.strategy == "deepspeed_stage_1" and on_gpu.proj_dir == f"out/{method}"
    assert on_gpu.lr_schedule == ("cos" if method == "lora" else "constant")
    assert on_gpu.lr_final == pytest.approx(on_gpu.lr_init / 10) and on_gpu.warmup_steps == 10   # derived
    cpu = parse_args([*preset, "--model", "tiny", "--data", str(sample_data), "--gpus", "0", "--steps", "5",
                      "--lr", "1e-3", "--proj_dir", str(tmp_path / "run")])
    assert (cpu.precision, cpu.total_steps, cpu.warmup_steps, cpu.lr_final) == ("fp32", 5, 0, pytest.approx(1e-4))
    validate(cpu)
    preflight(cpu)


def test_a_users_file_with_only_lr_init_derives_lr_final(tmp_path):
    """The lr_final of a run started with train_lora.sh --config mine.json follows mine.json's lr_init."""
    (tmp_path / "mine.json").write_text('{"lr_init": 4e-4}')
    cfg = parse_args(["--config", str(REPO / "configs" / "train" / "lora.json"), "--config", str(tmp_path / "mine.json")])
    assert (cfg.lr_init, cfg.lr_final, cfg.lr_schedule) == (4e-4, pytest.approx(4e-5), "cos")


def test_train_state_sh_reads_its_preset(sample_data, tmp_path):
    """train_state.sh = train.py with configs/train/state.json: state tuning, RWKV-PEFT's learning rates
    (1 -> 0.01), the same short flags as the other scripts; --rank does not apply to a state."""
    text = (REPO / "scripts" / "train_state.sh").read_text()
    assert '--config "$REPO_ROOT/configs/train/state.json" "$@"' in text
    preset = ["--config", str(REPO / "configs" / "train" / "state.json")]
    on_gpu = parse_args([*preset, "--gpus", "1"])
    assert (on_gpu.peft.method, on_gpu.peft.train_state, on_gpu.peft.r, on_gpu.lr_init, on_gpu.lr_final) == \
        ("state", True, None, 1.0, 0.01)
    assert (on_gpu.precision, on_gpu.grad_cp, on_gpu.ctx_len, on_gpu.micro_bsz, on_gpu.proj_dir) == \
        ("bf16", True, 1024, 4, "out/state")
    cpu = parse_args([*preset, "--model", "tiny", "--data", str(sample_data), "--gpus", "0", "--steps", "5",
                      "--lr", "0.5", "--chunk_ctx", "256", "--proj_dir", str(tmp_path / "run")])
    assert (cpu.precision, cpu.total_steps, cpu.lr_init, cpu.chunk_ctx) == ("fp32", 5, 0.5, 256)
    validate(cpu)
    preflight(cpu)
    with pytest.raises(ValueError, match="--peft_r does not apply to --peft state"):
        parse_args([*preset, "--rank", "64"])


@pytest.mark.slow
def test_train_state_sh_runs_in_chunks(tiny_fp32_checkpoint, sample_data, tmp_path):
    """State tuning of a (non-zero) tiny model on the CPU through the script, as infctx chunks."""
    done = script("train_state.sh", "--model", tiny_fp32_checkpoint, "--data", sample_data, "--proj_dir", "runs/state", "--gpus", 0,
                  "--steps", 4, "--ctx_len", 64, "--chunk_ctx", 16, "--micro_bsz", 2, "--grad_cp", 0, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "state" / "checkpoint-000004" / "state.pth").is_file()


@pytest.mark.slow
def test_train_bone_sh_trains_rwkv7(sample_data, tmp_path):
    """`--model rwkv7-tiny`: a random RWKV-7 from RWKV-LM's init, the same script and flags; the loss falls."""
    done = script("train_bone.sh", "--model", "rwkv7-tiny", "--data", sample_data, "--proj_dir", "runs/bone7",
                  "--gpus", 0, "--rank", 16, "--ctx_len", 64, "--steps", 30, "--lr", "1e-2", "--grad_cp", 0,
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "runs" / "bone7" / "metrics.csv")))
    curve = [float(r["loss"]) for r in rows]
    assert len(curve) == 30 and sum(curve[-5:]) < sum(curve[:5]) - 0.5, curve
    assert read_adapter(tmp_path / "runs" / "bone7" / "checkpoint-000030").base_model["family"] == "x070"


# ------------------------------------------------------------------ the GPU checks, rehearsed on the CPU

def test_gpu_checks_refuses_a_bad_stage_or_flag(tmp_path):
    for args in (["nothing"], ["--fast", "quick"], []):
        done = script("gpu_checks.sh", *args, cwd=tmp_path)
        assert done.returncode == 2 and "usage: bash scripts/gpu_checks.sh" in done.stderr, done.stderr


@pytest.mark.slow
def test_gpu_checks_quick_rehearsed_on_the_cpu_with_the_gpu_machines_wheels(tmp_path):
    """gpu_wheels.sh fills a folder with wheels for CPython 3.12 (DeepSpeed built here); gpu_checks.sh quick,
    rehearsed, checks they would install there, then runs every step with its CPU counterpart and writes
    each result where --docs says, nothing into the repository's docs/."""
    before = (REPO / "docs" / "benchmarks.md").read_text()
    wheels = tmp_path / "wheels"
    done = script("gpu_wheels.sh", "--out", wheels, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    names = {p.name.split("-")[0].lower() for p in wheels.glob("*.whl")}
    assert {"deepspeed", "pydantic", "pydantic_core", "hjson", "msgpack", "fla_core", "bitsandbytes"} <= names, names
    docs = tmp_path / "docs"
    done = script("gpu_checks.sh", "--rehearse", "--docs", docs, "--work_dir", tmp_path / "work", "--wheels", wheels,
                  "quick", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"the {len(names)} wheels in {wheels} would install on CPython 3.12" in done.stderr
    assert "passed" in (docs / "gpu-tests.log").read_text()
    text = (docs / "benchmarks.md").read_text()
    for section in ("wkv6:cpu", "wkv7:cpu", "table:cpu", "plan-vs-measured:cpu"):
        assert f"<!-- {section} -->" in text and f"<!-- /{section} -->" in text, section
    rows = list(csv.DictReader(open(docs / "bench" / "rwkv6-tiny-table.csv")))
    # LoRA, Bone, Bat (out) and the materialising Bat, grad_cp 0 and 1; Bone and LoRA on an nf4 base
    assert sorted((r["method"], r["grad_cp"]) for r in rows) == sorted(
        [(m, g) for m in ("lora", "bone", "bat_out", "bat_materialized") for g in ("0", "1")]
        + [("bone_nf4", "0"), ("lora_nf4", "0")])
    assert "quick done in" in done.stderr
    assert (REPO / "docs" / "benchmarks.md").read_text() == before


@pytest.mark.parametrize("objective", ["dpo", "grpo"])
def test_the_preference_and_reward_scripts_read_their_presets(objective, tmp_path):
    """train_dpo.sh / train_grpo.sh = train.py with configs/train/<objective>.json: Bone r=64 adapters (the
    reference is the base with them off), the short flags of the other scripts, the user's flags winning."""
    text = (REPO / "scripts" / f"train_{objective}.sh").read_text()
    assert f'--config "$REPO_ROOT/configs/train/{objective}.json" "$@"' in text
    preset = ["--config", str(REPO / "configs" / "train" / f"{objective}.json")]
    on_gpu = parse_args([*preset, "--gpus", "1"])
    assert (on_gpu.objective, on_gpu.peft.method, on_gpu.peft.r, on_gpu.precision, on_gpu.grad_cp) == \
        (objective, "bone", 64, "bf16", True)
    assert on_gpu.proj_dir == f"out/{objective}" and on_gpu.ctx_len == 1024
    mine = parse_args([*preset, "--rank", "16", "--lr", "1e-4", "--reward", "exact", "format=0.2", "--gpus", "0"])
    assert (mine.peft.r, mine.lr_init, mine.reward) == (16, 1e-4, ["exact", "format=0.2"])
    validate(mine)
