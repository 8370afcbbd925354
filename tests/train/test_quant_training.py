"""Training on a quantised base (--quant): every adapter method and state tuning on both families learn, the
frozen linears hold the quantised bytes, adapters record the quantisation, resumes keep it, both merges
equal the functions they name, and generate/eval run the adapter on the quantised base."""

from __future__ import annotations

import json

import pytest
import torch

from src.model import families, load_model
from src.peft import read_adapter
from src.peft.registry import PEFT_METHODS
from src.peft.merge import check_merge, merge_into_base
from src.quant import QuantLinear, QuantScheme, QuantizedWeight, quantized_modules
from src.quant import backend
from src.train import main, run, config_from_values
from tests.train.test_trainer import as_argv, flags, losses

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FAMILIES = [f.name for f in families()]




@pytest.mark.parametrize("family, kind", [
    pytest.param(family, kind, marks=() if (family, kind) == ("x070", "nf4") else pytest.mark.slow)
    for family in FAMILIES for kind in ("nf4", "fp4", "int8")])
def test_the_frozen_linears_hold_the_quantised_bytes(tiny_bases, family, kind):
    scheme = QuantScheme(kind)
    plain = load_model(tiny_bases[family])
    shapes = {name: m.weight.shape for name, m in plain.named_modules() if isinstance(m, torch.nn.Linear)
              and name != "head"}
    model = load_model(tiny_bases[family], quant=scheme)
    held = quantized_modules(model)
    assert set(held) == set(shapes)
    assert isinstance(model.head, torch.nn.Linear) and not any(
        isinstance(m, torch.nn.Linear) for n, m in model.named_modules() if n.startswith("blocks."))
    assert sum(w.nbytes() for w in held.values()) == sum(scheme.weight_bytes(*s) for s in shapes.values())
    floats = sum(shapes[n].numel() * 4 for n in shapes)
    assert sum(w.nbytes() for w in held.values()) < floats * (0.16 if scheme.four_bit else 0.27)
    assert model.quant_scheme == scheme


def test_missing_or_unusable_bitsandbytes_is_one_line(tiny_bases, sample_data, tmp_path, capsys, monkeypatch):
    def missing():
        raise ValueError(f"--quant needs bitsandbytes, which is not installed ({backend.INSTALL}): "
                         f"No module named 'bitsandbytes'")
    monkeypatch.setattr(backend, "_import", missing)
    values = flags(tiny_bases["x060"], sample_data, tmp_path / "run", quant="nf4")
    assert main(as_argv(values)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"train.py: error: --quant needs bitsandbytes, which is not installed ({backend.INSTALL}): "
                   f"No module named 'bitsandbytes'"] or (len(err) == 1 and "needs bitsandbytes" in err[0])
    assert not (tmp_path / "run").exists()


def test_a_device_bitsandbytes_cannot_run_on_is_named():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match=r"--quant: bitsandbytes cannot quantise on cuda"):
        backend.bnb_functional("cuda")


def quant_run(base, data, proj, method, kind, **changes):
    rank = {"lora": 8, "pissa": 8}.get(method, 16)
    values = flags(base, data, proj, peft=method, quant=kind, **{"epoch_steps": 12, "lr_init": 1e-2,
                                                                  "lr_final": 3e-3, "warmup_steps": 0, **changes})
    if method == "state":
        values.pop("peft_r")
        values.update(lr_init=1.0, lr_final=0.1)
    else:
        values["peft_r"] = rank
    return values


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nf4", "int8"])
@pytest.mark.parametrize("method", PEFT_METHODS)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_method_learns_on_a_quantised_base(tiny_bases, sample_data, tmp_path, family, method, kind):
    proj = tmp_path / "run"
    run(config_from_values({}, quant_run(tiny_bases[family], sample_data, proj, method, kind)))
    curve = losses(proj)
    assert sum(curve[-3:]) < sum(curve[:3]) - 0.05, curve
    adapter = read_adapter(proj / "checkpoint-000012")
    assert adapter.quant["type"] == kind and adapter.quant["dtype"] == "fp32" and adapter.quant["head"] is False
    assert "att.key.weight" in adapter.quant["tensors"]
    assert not any(".weight.codes" in k or ".weight.absmax" in k for k in adapter.tensors)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["bone", "pissa", "bat"])
def test_both_merges_equal_the_functions_they_name(tiny_bases, sample_data, tmp_path, method):
    """--merge_base full: base + adapter on the full-precision base; dequantized: on the base quantised as in
    training (PiSSA's residual quantised again), which is what the run trained."""
    proj = tmp_path / "run"
    run(config_from_values({}, quant_run(tiny_bases["x070"], sample_data, proj, method, "nf4", epoch_steps=4)))
    adapter = read_adapter(proj / "checkpoint-000004")
    for merge_base, quantized in (("full", False), ("dequantized", True)):
        out = tmp_path / f"{merge_base}.pth"
        merge_into_base(tiny_bases["x070"], adapter, out, merge_base=merge_base)
        _, same = check_merge(tiny_bases["x070"], adapter, out, quantized=quantized)
        _, other = check_merge(tiny_bases["x070"], adapter, out, quantized=not quantized)
        assert same < 1e-5, (merge_base, same)
        assert other > 1e-3, (merge_base, other)                 # the two tiny_bases do differ


@pytest.mark.slow
def test_a_resume_keeps_the_quantisation(tiny_bases, sample_data, tmp_path, capsys):
    values = quant_run(tiny_bases["x060"], sample_data, tmp_path / "run", "bone", "nf4", epoch_steps=2, epoch_count=2)
    assert main(as_argv(values)) == 0
    capsys.readouterr()
    for change, message in (({"quant": "int8"}, "--quant 'int8' here, 'nf4' in the checkpoint"),
                            ({"quant": "none"}, "--quant 'none' here, 'nf4' in the checkpoint"),
                            ({"quant_blocksize": 32}, "--quant_blocksize 32 here, 64 in the checkpoint")):
        assert main(as_argv({**values, "resume": "latest", "epoch_count": 3, **change})) == 2
        assert message in capsys.readouterr().err
    assert main(as_argv({**values, "resume": "latest", "epoch_count": 3})) == 0
    assert len(losses(tmp_path / "run")) == 6


@pytest.mark.slow
def test_eval_and_generate_run_the_adapter_on_the_quantised_base(tiny_bases, sample_data, tmp_path, capsys):
    from src.infer.evaluate import main as eval_main
    proj = tmp_path / "run"
    run(config_from_values({}, quant_run(tiny_bases["x060"], sample_data, proj, "lora", "nf4", epoch_steps=4)))
    adapter = read_adapter(proj / "checkpoint-000004")
    merged = tmp_path / "dequantized.pth"
    merge_into_base(tiny_bases["x060"], adapter, merged, merge_base="dequantized")
    results = {}
    for name, argv in (("quantised", ["--model", str(tiny_bases["x060"]), "--adapter", str(proj), "--quant", "nf4"]),
                       ("merged", ["--model", str(merged)])):
        assert eval_main([*argv, "--data", str(sample_data), "--ctx_len", "32", "--max_windows", "4",
                          "--device", "cpu"]) == 0
        results[name] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["loss"]
    assert abs(results["quantised"] - results["merged"]) < 1e-4, results


@pytest.mark.parametrize("family", [pytest.param(f, marks=() if f == "x070" else pytest.mark.slow) for f in FAMILIES])
def test_infctx_chunks_on_a_quantised_base_equal_the_whole_sample(tiny_bases, family):
    """Bone + tuned states on an nf4 base: chunks of 8 tokens carry the states with their gradients, every
    gradient equal to the whole sample's (as on a full-precision base)."""
    from tests.helpers import rel_err
    from tests.train.test_rwkv7_training import bone_and_state, whole_and_chunked_gradients
    model = bone_and_state(load_model(tiny_bases[family], quant=QuantScheme("nf4")))
    grads = whole_and_chunked_gradients(model, B=2, T=24, chunk=8, masked=True)
    assert grads[0]["blocks.0.att.time_state"].abs().max() > 0
    for name, grad in grads[0].items():
        assert rel_err(grads[1][name], grad) < 1e-5, name


@pytest.mark.slow
def test_zero3_bf16_infctx_and_head_chunks_on_a_quantised_base(tiny_bases, sample_data, tmp_path):
    """The quantised buffers under DeepSpeed ZeRO-3 in bf16 (cast, never converted), with --chunk_ctx and
    --head_chunk: the run trains, and its adapter records a bf16 quantisation."""
    proj = tmp_path / "run"
    run(config_from_values({}, quant_run(tiny_bases["x070"], sample_data, proj, "bat", "nf4", strategy="deepspeed_stage_3",
                                         precision="bf16", chunk_ctx=16, head_chunk=32, epoch_steps=6)))
    curve = losses(proj)
    assert len(curve) == 6 and all(c == c for c in curve)
    assert read_adapter(proj / "checkpoint-000006").quant["dtype"] == "bf16"
