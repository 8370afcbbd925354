"""src/model/checkpoint.py: strict loading that names keys and shapes, memory-mapped loading,
RWKV-LM's key set on saving, models built on the meta device."""

import os

import psutil
import pytest
import torch

from src.model import RWKV6, RWKV6Config, load_rwkv6, parameter_shapes, read_checkpoint, save_rwkv6
from tests.helpers import rel_err


# ------------------------------------------------------------------ strict loading

def corrupt(tmp_path, source, edit):
    sd = dict(torch.load(source))
    edit(sd)
    path = tmp_path / "edited.pth"
    torch.save(sd, path)
    return path


@pytest.mark.parametrize("edit,message", [pytest.param(*case, marks=() if k < 2 else pytest.mark.slow)
                                          for k, case in enumerate([
    (lambda sd: sd.pop("blocks.1.att.gate.weight"), "missing key blocks.1.att.gate.weight (expected shape (128, 128))"),
    (lambda sd: sd.update({"blocks.0.att.time_state": torch.zeros(2, 64, 64)}),
     "unexpected key blocks.0.att.time_state (2, 64, 64)"),
    (lambda sd: sd.update({"blocks.1.ffn.key.weight": torch.zeros(512, 128)}),
     "key blocks.1.ffn.key.weight has shape (512, 128) in the file, the model expects (448, 128)"),
    (lambda sd: sd.update({"blocks.0.att.time_decay": [1.0]}),
     "key blocks.0.att.time_decay holds a list, not a tensor"),
    (lambda sd: sd.pop("blocks.0.att.time_faaaa"), "not an RWKV-6 checkpoint, missing key(s) ['blocks.0.att.time_faaaa']"),
])])
def test_strict_loading_names_the_key_and_shapes(tmp_path, tiny_fp32_checkpoint, edit, message):
    path = corrupt(tmp_path, tiny_fp32_checkpoint, edit)
    with pytest.raises(ValueError) as e:
        load_rwkv6(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_a_damaged_tensor_that_sizes_are_read_from_is_named(tmp_path, tiny_fp32_checkpoint):
    path = corrupt(tmp_path, tiny_fp32_checkpoint, lambda sd: sd.update({"emb.weight": sd["emb.weight"][:65000]}))
    with pytest.raises(ValueError, match=r"head\.weight has shape \(65536, 128\) in the file, the model expects "
                                         r"\(65000, 128\) \(the sizes were read from the file: vocab_size, n_embd "
                                         r"from emb\.weight \(65000, 128\);"):
        load_rwkv6(path)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(tiny_fp32_checkpoint.read_bytes()[:100_000])
    with pytest.raises(ValueError, match=r"truncated\.pth \(100000 bytes\): it is truncated or damaged"):
        load_rwkv6(truncated)


def test_loading_against_a_given_config(tiny_fp32_checkpoint, tiny_config):
    with pytest.raises(ValueError, match="blocks.0.ffn.key.weight has shape \\(448, 128\\) in the file, "
                                         "the model expects \\(512, 128\\)"):
        load_rwkv6(tiny_fp32_checkpoint, config=tiny_config.replace(dim_ffn=512))


def test_missing_and_corrupt_files(tmp_path, tiny_fp32_checkpoint):
    with pytest.raises(FileNotFoundError, match="nope.pth does not exist"):
        load_rwkv6(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(tiny_fp32_checkpoint.read_bytes()[:5000])
    with pytest.raises(ValueError, match="cannot read checkpoint .*bad.pth"):
        load_rwkv6(bad)
    rwkv7 = tmp_path / "rwkv7.pth"
    torch.save({"emb.weight": torch.zeros(10, 64), "blocks.0.att.x_r": torch.zeros(1, 1, 64)}, rwkv7)
    with pytest.raises(ValueError, match=r"is an RWKV-7 \(x070\) model, not RWKV-6 \(x060\): load it with load_model"):
        load_rwkv6(rwkv7)


@pytest.mark.slow
def test_loading_is_memory_mapped(tmp_path):
    """A bf16 file loaded as bf16 stays in the page cache: resident memory grows by far less than its size."""
    config = RWKV6Config(n_layer=1, n_embd=1024, vocab_size=65536)      # ~300 MB of bf16
    path = tmp_path / "big.pth"
    save_rwkv6({k: torch.zeros(s, dtype=torch.bfloat16) for k, s in parameter_shapes(config).items()}, path,
               dtype=None)
    size = path.stat().st_size
    process = psutil.Process(os.getpid())
    before = process.memory_info().rss
    model = load_rwkv6(path, dtype=torch.bfloat16)
    grown = process.memory_info().rss - before
    assert model.emb.weight.dtype == torch.bfloat16
    assert grown < 0.25 * size, f"loading grew RSS by {grown / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"


# ------------------------------------------------------------------ saving

def expected_rwkv_lm_keys(n_layer):
    """RWKV-LM x060's key list, written out by hand."""
    keys = ["emb.weight"]
    for i in range(n_layer):
        b = f"blocks.{i}."
        keys += [b + "ln1.weight", b + "ln1.bias", b + "ln2.weight", b + "ln2.bias"]
        if i == 0:
            keys += [b + "ln0.weight", b + "ln0.bias"]
        keys += [b + "att." + n for n in (
            "time_maa_x", "time_maa_w", "time_maa_k", "time_maa_v", "time_maa_r", "time_maa_g",
            "time_maa_w1", "time_maa_w2", "time_decay", "time_decay_w1", "time_decay_w2", "time_faaaa",
            "receptance.weight", "key.weight", "value.weight", "output.weight", "gate.weight",
            "ln_x.weight", "ln_x.bias")]
        keys += [b + "ffn." + n for n in ("time_maa_k", "time_maa_r", "key.weight", "receptance.weight", "value.weight")]
    return keys + ["ln_out.weight", "ln_out.bias", "head.weight"]


def test_save_writes_rwkv_lm_keys_in_bf16(tmp_path, tiny_fp32_checkpoint):
    model = load_rwkv6(tiny_fp32_checkpoint)
    out = save_rwkv6(model, tmp_path / "saved.pth")
    sd = torch.load(out)
    assert list(sd) == expected_rwkv_lm_keys(2)
    assert {v.dtype for v in sd.values()} == {torch.bfloat16}
    assert sd["blocks.0.att.time_faaaa"].shape == (2, 64)
    assert sd["blocks.0.att.time_maa_w2"].shape == (5, 32, 128)
    assert sd["blocks.0.att.time_decay"].shape == (1, 1, 128)
    assert [p.name for p in tmp_path.iterdir()] == ["saved.pth"]          # no temporary file left
    again = load_rwkv6(out)
    assert rel_err(again.head.weight, model.head.weight) < 1e-2




def test_a_model_built_on_the_meta_device_allocates_nothing():
    """What load_rwkv6 and the trainer's preflight rely on: 14B parameters (56 GB in fp32) cost no memory."""
    process = psutil.Process(os.getpid())
    before = process.memory_info().rss
    with torch.device("meta"):
        model = RWKV6(RWKV6Config.preset("14b"))
    grown = process.memory_info().rss - before
    n = sum(p.numel() for p in model.parameters())
    assert n == sum(s.numel() for s in parameter_shapes(RWKV6Config.preset("14b")).values()) > 14e9
    assert grown < 100 * 2**20, f"building on meta grew RSS by {grown / 2**20:.0f} MiB"


def test_read_checkpoint_returns_tensors(tiny_fp32_checkpoint):
    sd = read_checkpoint(tiny_fp32_checkpoint)
    assert sd["emb.weight"].shape == (65536, 128)
