"""train.py --objective dpo | grpo end to end: the demonstrations (a tiny model first taught two answers to the same
prompts is moved to one of them), every adapter method and state tuning on both families with infctx, ZeRO-2 on
two processes equal to one, seeded runs reproducible and resumed exactly, validation, the reference costing no
parameters, and the one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from src.bench.align import demo_data, dpo_flags, grpo_flags, preference_accuracy, teach
from src.model import families
from src.peft import read_adapter
from src.peft.registry import PEFT_METHODS
from src.train import main
from tests.train.test_trainer import as_argv, train_subprocess

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FAMILIES = [f.name for f in families()]


def rows(proj_dir) -> list[dict]:
    return list(csv.DictReader(open(Path(proj_dir) / "metrics.csv")))


def common(**changes) -> dict:
    values = {"accelerator": "cpu", "strategy": "deepspeed_stage_2", "precision": "fp32", "ctx_len": 16,
              "progress_bar": 0, "seed": 1, "warmup_steps": 1, "lr_final": 3e-3}
    values.update(changes)
    return values


@pytest.fixture(scope="module")
def data(tmp_path_factory, world_tokenizer):
    """The demonstration's data (src/bench/align.py): both answers to every prompt (sft), preference pairs
    (" 7" preferred for odd items, " 9" for even ones, so a model preferring one answer everywhere starts at
    accuracy 0.5), prompts whose answer is 7; and a tiny random RWKV-7 base."""
    return demo_data(tmp_path_factory.mktemp("align"), world_tokenizer)


@pytest.fixture(scope="module")
def taught(data):
    """The base fine-tuned (all weights) on both answers of every prompt: it gives them about equal probability."""
    return teach(data)


@pytest.mark.slow
def test_dpo_moves_the_preference_accuracy_from_a_half_to_above_nine_tenths(data, taught):
    before = preference_accuracy(taught, data / "pairs")
    argv = dpo_flags(data, taught, data / "dpo", steps=24) + [f"--val_data={data / 'pairs'}", "--val_every=12"]
    assert main(argv) == 0
    after = preference_accuracy(taught, data / "pairs", data / "dpo")
    assert 0.3 <= before <= 0.7 and after > 0.9, (before, after)
    log = rows(data / "dpo")
    assert float(log[0]["loss"]) == pytest.approx(0.693147, abs=1e-5)           # the policy starts at the reference
    assert float(log[-1]["rewards/accuracy"]) > 0.9 and float(log[-1]["rewards/margin"]) > 0.5
    assert [r["step"] for r in log if r["val_loss"]] == ["12", "24"]
    assert float(log[-1]["val_loss"]) < float(log[-1 - 12]["val_loss"]) < 0.6932
    assert (data / "dpo" / "loss.png").stat().st_size > 0


@pytest.mark.slow
def test_grpo_with_an_exact_reward_raises_the_mean_reward_above_nine_tenths(data, taught):
    assert main(grpo_flags(data, taught, data / "grpo", steps=10)) == 0
    log = rows(data / "grpo")
    rewards = [float(r["reward"]) for r in log]
    assert 0.2 <= rewards[0] <= 0.8 and sum(rewards[-3:]) / 3 > 0.9, rewards
    assert float(log[0]["kl"]) == 0.0 and max(float(r["kl"]) for r in log) > 0
    assert all(r["reward/exact"] == r["reward"] for r in log)
    assert all(1 <= float(r["completion_length"]) <= 3 for r in log)


def matrix_runs() -> list:
    """Every objective x family x method of the registries (state tuning included)."""
    return [pytest.param(objective, family, method, marks=pytest.mark.slow, id=f"{objective}-{family}-{method}")
            for objective in ("dpo", "grpo") for family in FAMILIES for method in PEFT_METHODS]




def short_run(objective, base, data, proj_dir, **changes) -> dict:
    if objective == "dpo":
        values = common(load_model=base, data_file=data / "pairs", objective="dpo", ctx_len=16, chunk_ctx=5)
    else:                          # a length reward varies between completions: the advantages are not zero
        values = common(load_model=base, data_file=data / "prompts.jsonl", objective="grpo", ctx_len=24, chunk_ctx=7,
                        group_size=4, max_new_tokens=6, reward="length exact=0.5", length_target=30)
    values.update(proj_dir=proj_dir, peft="bone", peft_r=16, micro_bsz=2, epoch_steps=3, lr_init=1e-2)
    values.update(changes)
    return values


@pytest.mark.parametrize("objective, family, method", matrix_runs())
def test_every_method_and_state_tuning_trains_on_both_families_with_infctx(objective, family, method, data,
                                                                          tiny_bases, tmp_path):
    rank = {"lora": 4, "pissa": 4}.get(method, 16)
    values = short_run(objective, tiny_bases[family], data, tmp_path / "run", peft=method,
                       **({"peft_r": rank} if method != "state" else {}))
    if method == "state":
        values.pop("peft_r")
    assert main(as_argv(values)) == 0
    log = rows(tmp_path / "run")
    assert len(log) == 3 and all(torch.isfinite(torch.tensor(float(r["loss"]))) for r in log)
    adapter = read_adapter(tmp_path / "run" / "checkpoint-000003")
    assert any(t.abs().max() > 0 for name, t in adapter.tensors.items() if not name.endswith(("init_lora_A",
                                                                                                "init_lora_B")))
    if objective == "dpo":                 # starts at the reference (log 2), then moves away from it
        assert float(log[0]["loss"]) == pytest.approx(0.693147, abs=1e-5)
        assert all(abs(float(r["loss"]) - 0.693147) > 1e-5 for r in log[1:])
    else:
        assert float(log[0]["kl"]) == 0.0 and any(float(r["kl"]) > 0 for r in log[1:])


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["dpo", "grpo"])
@pytest.mark.parametrize("setting", [dict(quant="nf4"), dict(strategy="deepspeed_stage_3", head_chunk=8)],
                         ids=["nf4", "zero3-head_chunk"])
def test_a_quantised_base_and_zero3_compose(objective, setting, data, tiny_bases, tmp_path):
    values = short_run(objective, tiny_bases["x070"], data, tmp_path / "run", **setting)
    assert main(as_argv(values)) == 0
    log = rows(tmp_path / "run")
    assert len(log) == 3 and all(torch.isfinite(torch.tensor(float(r["loss"]))) for r in log)
    if objective == "dpo":
        assert float(log[0]["loss"]) == pytest.approx(0.693147, abs=1e-5) and float(log[-1]["loss"]) != 0.693147
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["objective"] == objective


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["dpo", "grpo"])
def test_a_seeded_run_is_reproducible_and_resumes_exactly(objective, data, tiny_bases, tmp_path):
    base = tiny_bases["x060"]
    whole = short_run(objective, base, data, tmp_path / "whole", epoch_steps=4)
    again = short_run(objective, base, data, tmp_path / "again", epoch_steps=4)
    first = short_run(objective, base, data, tmp_path / "cut", keep_trainer_states=2)
    for values in (whole, again):
        assert main(as_argv(values)) == 0
    # the same run stopped after 2 steps (a checkpoint each 2), then resumed to 4
    assert main(as_argv({**first, "epoch_steps": 2, "epoch_count": 2})) == 0
    import shutil
    shutil.rmtree(tmp_path / "cut" / "checkpoint-000004")
    assert main(as_argv({**first, "epoch_steps": 2, "epoch_count": 2, "resume": "latest"})) == 0
    columns = [c for c in rows(tmp_path / "whole")[0] if c not in ("tokens_per_s", "elapsed_s", "lr", "tokens")]
    reference = [[r[c] for c in columns] for r in rows(tmp_path / "whole")]
    assert [[r[c] for c in columns] for r in rows(tmp_path / "again")] == reference
    expected = read_adapter(tmp_path / "whole" / "checkpoint-000004").tensors
    for run in ("again", "cut"):
        got = read_adapter(tmp_path / run / "checkpoint-000004").tensors
        assert all(torch.equal(got[k], expected[k]) for k in expected), run
    assert [[r[c] for c in columns] for r in rows(tmp_path / "cut")] == reference


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["dpo", "grpo"])
def test_zero2_on_two_processes_equals_one_process(objective, data, tiny_bases, tmp_path):
    base = tiny_bases["x070"]
    extra = {"ref_precompute": 1} if objective == "dpo" else {}          # split over the ranks, then gathered
    one = short_run(objective, base, data, tmp_path / "one", micro_bsz=2, epoch_steps=3, **extra)
    two = short_run(objective, base, data, tmp_path / "two", micro_bsz=1, devices=2, epoch_steps=3, **extra)
    for values in (one, two):
        proc = train_subprocess(values)
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
    assert "MEMBER: 2/2" in out
    a, b = rows(tmp_path / "one"), rows(tmp_path / "two")
    # means agree (a standard deviation is of each rank's micro-batch, and so differs)
    for column in ("loss", *[c for c in a[0] if c.startswith(("rewards/", "reward", "kl")) and not c.endswith("_std")]):
        assert max(abs(float(x[column]) - float(y[column])) for x, y in zip(a, b)) < 1e-4, column
    ours = read_adapter(tmp_path / "two" / "checkpoint-000003").tensors
    theirs = read_adapter(tmp_path / "one" / "checkpoint-000003").tensors
    assert max(float((ours[k] - theirs[k]).abs().max()) for k in ours) < 1e-4


@pytest.mark.slow
def test_the_reference_costs_no_parameters(data, tiny_bases, tmp_path):
    """The module's parameters and buffers during a DPO and a GRPO step are exactly a language-model run's."""
    import lightning as L

    class Count(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            held = [*pl_module.parameters(), *pl_module.buffers()]
            self.numbers = (len(held), sum(t.numel() for t in held))

    counts = {}
    from src.train import parse_args, run
    for objective in ("lm", "dpo", "grpo"):
        values = short_run(objective if objective != "lm" else "dpo", tiny_bases["x070"], data, tmp_path / objective,
                           epoch_steps=1)
        values.pop("chunk_ctx")
        if objective == "lm":
            values.update(objective="lm", data_file=data / "sft", data_type="sft")
        probe = Count()
        run(parse_args(as_argv(values)), extra_callbacks=(probe,))
        counts[objective] = probe.numbers
    assert counts["dpo"] == counts["lm"] == counts["grpo"]


@pytest.mark.parametrize("changes, message", [
    (dict(objective="dpo", peft="none"), "--objective dpo takes its reference policy from the base"),
    (dict(objective="grpo", data_type="sft"), "--data_type sft is for --objective lm"),
    (dict(objective="grpo", val_data="held_out"), "--objective grpo logs its rewards"),
    (dict(objective="grpo", max_new_tokens=512), "leaves no room for a prompt"),
    (dict(objective="dpo", dpo_label_smoothing=0.5), "--dpo_label_smoothing must be below 0.5"),
    (dict(objective="grpo", top_p=0), "--top_p in (0, 1]"),
])
def test_the_objectives_settings_are_checked_alone(changes, message):
    from src.train import config_from_values, validate
    values = {"peft": "bone", "peft_r": 8, "ctx_len": 512, "accelerator": "cpu", **changes}
    if values["peft"] == "none":
        values.pop("peft_r")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[").replace("]", r"\]")):
        validate(config_from_values({}, values))


@pytest.mark.parametrize("changes, message", [pytest.param(*case, marks=pytest.mark.slow) for case in [
    (dict(objective="dpo", peft="none"), "--objective dpo takes its reference policy from the base"),
    (dict(objective="dpo", data_type="sft"), "--data_type sft is for --objective lm"),
    (dict(objective="dpo", data_file="SFT"), "not preference pairs"),
    (dict(objective="grpo", data_file="PAIRS"), "not valid UTF-8"),
    (dict(objective="grpo", reward="nosuch"), "--reward"),
    (dict(objective="grpo", max_new_tokens=16), "leaves no room for a prompt"),
    (dict(objective="grpo", group_size=1), "--group_size must be at least 2"),
    (dict(objective="grpo", val_data="PAIRS"), "--objective grpo logs its rewards"),
    (dict(objective="dpo", dpo_label_smoothing=0.5), "--dpo_label_smoothing must be below 0.5"),
]])
def test_bad_settings_are_one_line_before_anything_is_written(data, tmp_path, capsys, changes, message):
    values = common(load_model=data / "base.pth", proj_dir=tmp_path / "run", peft="bone", peft_r=16, micro_bsz=2,
                    epoch_steps=2, lr_init=1e-2,
                    data_file=data / ("pairs" if changes["objective"] == "dpo" else "prompts.jsonl"))
    if changes["objective"] == "grpo":
        values["max_new_tokens"] = 4
    values.update(changes)
    for key, value in values.items():
        if value in ("SFT", "PAIRS"):
            values[key] = data / ("sft" if value == "SFT" else "pairs.bin")
    if values["peft"] == "none":
        values.pop("peft_r")
    assert main(as_argv(values)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1], err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("module, body, message", [
    ("raising_rewards", "raise KeyError('no such field')", "raised KeyError: 'no such field'"),
    ("nan_rewards", "return float('nan')", "returned nan, not a finite number"),
])
def test_a_failing_reward_function_stops_the_run_naming_it(module, body, message, data, tiny_bases, tmp_path, capsys,
                                                            monkeypatch):
    (tmp_path / f"{module}.py").write_text(f"def score(prompt, completion, answer):\n    {body}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    values = short_run("grpo", tiny_bases["x070"], data, tmp_path / "run", reward=f"exact {module}:score=0.5")
    assert main(as_argv(values)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("train.py: ") and f"reward {module}:score on sample 0" in err and message in err, err
