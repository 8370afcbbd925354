"""src/peft/merge.py and merge.py: merged checkpoints equal base + adapter, load in the `rwkv`
pip package, and every bad input is refused before anything is written."""

import copy
import subprocess
import sys

import pytest
import torch

from src.model import RWKV6Config
from src.model import init_model
from src.peft.merge import main
from src.model import load_rwkv6, save_rwkv6
from src.peft import PeftConfig, adapter_layers, adapter_state_dict, apply_peft, save_adapter
from tests.helpers import rel_err, rwkv_pip_model
from tests.peft.helpers import method_matrix, randomize_adapters

SMALL = RWKV6Config(n_layer=2, n_embd=128, vocab_size=300)
METHODS = {**method_matrix(variants=False), "bone": PeftConfig("bone", 16, train_parts=("time_decay",)),
           "lora": PeftConfig("lora", 8, alpha=16)}
TOKENS = torch.randint(0, 300, (1, 24), generator=torch.Generator().manual_seed(5))


def make_run(tmp_path, method, base_dtype=torch.float32):
    """A base .pth and a trained-looking adapter directory for it; returns (base, adapter dir, adapter model)."""
    base_model = init_model(SMALL, seed=2, nonzero=True)
    base_path = save_rwkv6(base_model, tmp_path / "base.pth", dtype=base_dtype)
    model = apply_peft(load_rwkv6(base_path), METHODS[method], verbose=False)
    randomize_adapters(model, seed=1)
    if METHODS[method].train_parts:                       # a train_parts change (bone's config trains it)
        with torch.no_grad():
            model.blocks[1].att.time_decay.add_(0.25)
    save_adapter(model, None, tmp_path / "out" / "checkpoint-10", step=10)
    return base_path, tmp_path / "out", model


def logits(model):
    with torch.no_grad():
        return model(TOKENS)[0]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_merged_fp32_model_equals_the_adapter_model(tmp_path, method, capsys):
    base, out_dir, model = make_run(tmp_path, method)
    assert main(["--base", str(base), f"--{method}", str(out_dir), "--check"]) == 0
    merged_path = out_dir / "checkpoint-10" / f"base-{method}-merged.pth"
    text = capsys.readouterr().out
    assert f"merged 16 {method} layers" in text and "largest logit difference" in text
    merged = load_rwkv6(merged_path)
    assert rel_err(logits(merged), logits(model)) < 1e-5
    sd = torch.load(merged_path)
    assert list(sd) == list(torch.load(base)) and {v.dtype for v in sd.values()} == {torch.float32}
    expect_time_decay = method == "bone"          # only bone's config trains time_decay
    changed = not torch.equal(sd["blocks.1.att.time_decay"], torch.load(base)["blocks.1.att.time_decay"])
    assert changed == expect_time_decay


@pytest.mark.slow
def test_the_rwkv_pip_package_loads_the_merged_file_and_agrees(tmp_path):
    base, out_dir, model = make_run(tmp_path, "bat")
    merged_path = tmp_path / "merged.pth"
    assert main(["--base", str(base), "--adapter", str(out_dir), "--output", str(merged_path)]) == 0
    pip_model = rwkv_pip_model(merged_path)
    pip_logits, _ = pip_model.forward(TOKENS[0].tolist(), None, full_output=True)
    assert rel_err(pip_logits, logits(model)) < 1e-4


@pytest.mark.parametrize("method", sorted(METHODS))
def test_bf16_base_merge_is_the_correctly_rounded_merge(tmp_path, method):
    """bf16 base: W + ΔW is computed in fp32 and rounded once, so every merged weight is within
    half a bf16 ulp (plus fp32 rounding of the sum) of the exact float64 W + ΔW; the logits stay within a few percent of
    base+adapter run in fp32 (measured on this tiny random model: about 1%)."""
    base, out_dir, model = make_run(tmp_path, method, base_dtype=torch.bfloat16)
    merged_path = tmp_path / "merged.pth"
    assert main(["--base", str(base), f"--{method}", str(out_dir), "--output", str(merged_path)]) == 0
    sd = torch.load(merged_path)
    assert {v.dtype for v in sd.values()} == {torch.bfloat16}
    base_sd = torch.load(base)
    for name, layer in adapter_layers(copy.deepcopy(model).double()).items():
        original = base_sd[f"{name}.weight"].double()
        delta = layer.delta_weight()                    # float64; relative to the original W for PiSSA too
        exact = original + delta
        half_ulp = torch.exp2(torch.floor(torch.log2(exact.abs().clamp_min(1e-30))) - 8)
        # fp32 rounding of the sum where its terms nearly cancel (PiSSA: scale * (BA - B0A0), each ~ W)
        terms = original.abs() + delta.abs()
        if method == "pissa":
            terms = terms + 2 * (layer.scale * layer.init_lora_B @ layer.init_lora_A).abs()
        fp32_arithmetic = 2.0 ** -21 * terms
        assert ((sd[f"{name}.weight"].double() - exact).abs() <= half_ulp + fp32_arithmetic).all(), name
    assert rel_err(logits(load_rwkv6(merged_path)), logits(model)) < 3e-2


def test_rwkv_peft_checkpoint_merges(tmp_path):
    base, _, model = make_run(tmp_path, "bat")
    # RWKV-PEFT's Bat is one block per input block, under the key suffix .disha
    peft = apply_peft(load_rwkv6(base), PeftConfig("bat", 16, bat_index="in"), verbose=False)
    randomize_adapters(peft, seed=3)
    proj = tmp_path / "proj"
    proj.mkdir()
    torch.save({k.replace(".bat", ".disha"): v for k, v in adapter_state_dict(peft).items()}, proj / "rwkv-0.pth")
    torch.save({}, proj / "rwkv-init.pth")
    assert main(["--base", str(base), "--bat", str(proj), "--output", str(tmp_path / "m.pth")]) == 0
    assert rel_err(logits(load_rwkv6(tmp_path / "m.pth")), logits(peft)) < 1e-5


def test_output_equal_to_base_is_refused(tmp_path, capsys):
    base, out_dir, _ = make_run(tmp_path, "bone")
    before = base.read_bytes()
    assert main(["--base", str(base), "--bone", str(out_dir), "--output", str(base)]) == 2
    assert "is one of this command's inputs" in capsys.readouterr().err
    link = tmp_path / "link.pth"
    link.symlink_to(base)
    assert main(["--base", str(base), "--bone", str(out_dir), "--output", str(link), "--overwrite"]) == 2
    assert base.read_bytes() == before


def test_existing_output_needs_overwrite(tmp_path, capsys):
    base, out_dir, _ = make_run(tmp_path, "bone")
    target = tmp_path / "m.pth"
    target.write_text("keep me")
    assert main(["--base", str(base), "--bone", str(out_dir), "--output", str(target)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and target.read_text() == "keep me"
    assert main(["--base", str(base), "--bone", str(out_dir), "--output", str(target), "--overwrite"]) == 0


def test_mismatched_adapter_is_refused_with_layer_and_shapes(tmp_path, capsys):
    base, out_dir, _ = make_run(tmp_path, "bone")
    other = save_rwkv6(init_model(RWKV6Config(n_layer=2, n_embd=192, vocab_size=300)), tmp_path / "other.pth")
    assert main(["--base", str(other), "--bone", str(out_dir), "--output", str(tmp_path / "m.pth")]) == 2
    assert "trained on another base model" in capsys.readouterr().err and not (tmp_path / "m.pth").exists()
    # an RWKV-PEFT file (no recorded base) that does not fit: the layer and both shapes are named
    torch.save({"blocks.0.att.key.bone": torch.zeros(16, 192)}, tmp_path / "rwkv-1.pth")
    assert main(["--base", str(base), "--bone", str(tmp_path / "rwkv-1.pth"), "--output", str(tmp_path / "m.pth")]) == 2
    err = capsys.readouterr().err
    assert "layer blocks.0.att.key (base weight 128 x 128)" in err and "bone has shape (16, 192)" in err
    assert "expects (16, 128)" in err and not (tmp_path / "m.pth").exists()


def test_wrong_method_flag_and_missing_files(tmp_path, capsys):
    base, out_dir, _ = make_run(tmp_path, "bone")
    assert main(["--base", str(base), "--lora", str(out_dir)]) == 2
    assert "is a bone adapter, not lora" in capsys.readouterr().err
    assert main(["--base", str(tmp_path / "nope.pth"), "--bone", str(out_dir)]) == 2
    assert "base model" in capsys.readouterr().err
    assert main(["--base", str(base), "--bone", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_merge_py_entry_point(tmp_path):
    base, out_dir, _ = make_run(tmp_path, "lora")
    result = subprocess.run([sys.executable, "merge.py", "--base", str(base), "--lora", str(out_dir),
                             "--output", str(tmp_path / "m.pth")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "merged 16 lora layers (r=8, alpha=16, step 10)" in result.stdout


@pytest.mark.parametrize("adapter_family, base_family", [("x070", "x060"), ("x060", "x070")])
def test_an_adapter_of_another_family_is_refused_naming_both(tmp_path, capsys, adapter_family, base_family):
    from src.model import get_family, load_model, save_checkpoint
    paths = {}
    for family in {adapter_family, base_family}:
        config = get_family(family).config_class(n_layer=2, n_embd=128, vocab_size=300)
        paths[family] = save_checkpoint(init_model(config, seed=1, nonzero=True), tmp_path / f"{family}.pth",
                                        dtype=torch.float32)
    model = apply_peft(load_model(paths[adapter_family]), PeftConfig("bone", 16), verbose=False)
    save_adapter(model, None, tmp_path / "adapter", step=1)
    assert main(["--base", str(paths[base_family]), "--adapter", str(tmp_path / "adapter"),
                 "--output", str(tmp_path / "m.pth")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    titles = {"x060": "RWKV-6 (x060)", "x070": "RWKV-7 (x070)"}
    assert len(err) == 1 and err[0].endswith(
        f"the adapter is for {titles[adapter_family]}, the model is {titles[base_family]}"), err
    assert not (tmp_path / "m.pth").exists()


STOPPING_SAVE = """
import os, signal, sys
import torch
from src.peft.merge import main

def stopping_save(obj, path, *args, **kwargs):
    with open(path, "wb") as f:                       # part of the file, as a long write would have by then
        f.write(b"PK" + bytes(4094))
    print(f"wrote 4096 bytes into {path}", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)              # delivered here, before the write could finish
    raise AssertionError("SIGTERM did not stop the write")

torch.save = stopping_save
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_merge_stopped_by_sigterm_during_the_write_leaves_no_temporary_file(tmp_path):
    """SIGTERM while the merged .pth is being written: one line, status 2, neither the output nor the
    temporary file it was being written to is left."""
    base, out_dir, _ = make_run(tmp_path, "lora")
    output = tmp_path / "merged" / "m.pth"
    result = subprocess.run([sys.executable, "-c", STOPPING_SAVE, "--base", str(base), "--lora", str(out_dir),
                             "--output", str(output)], capture_output=True, text=True)
    written = [line.split(" into ", 1)[1] for line in result.stdout.splitlines() if line.startswith("wrote 4096")]
    assert written and written[0].startswith(str(output.parent / ".m.pth.")) and written[0].endswith(".tmp"), \
        result.stdout + result.stderr
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == ["merge.py: stopped by SIGTERM; nothing was written (the output appears "
                                          "whole or not at all)"]
    assert list(output.parent.iterdir()) == []


def test_a_temporary_file_left_by_a_killed_merge_is_removed_by_the_next(tmp_path, capsys):
    """What SIGKILL leaves (nothing could run to remove it) goes, with a note, when the same output is next
    written; another output's temporary file stays."""
    base, out_dir, _ = make_run(tmp_path, "lora")
    output = tmp_path / "m.pth"
    stale, other = tmp_path / ".m.pth.k1ll3d_x.tmp", tmp_path / ".n.pth.k1ll3d_x.tmp"
    stale.write_bytes(b"PK" + bytes(1000))
    other.write_bytes(b"PK")
    assert main(["--base", str(base), "--lora", str(out_dir), "--output", str(output)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"note: removed 1 temporary file left in {tmp_path} by an interrupted write of {output} "
                   f"(.m.pth.k1ll3d_x.tmp)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["base.pth", "out", "m.pth", other.name])
