"""Bad input, damaged files, full or read-only disks: every command answers with one line that names the
flag or file, exits with status 2, and leaves what the user had as it was. One row per case: a new bad
input goes into the table.

Each row: (id, command, arguments, what must be in the one line). Arguments are built from `world`, a
directory holding a tiny base model (base.pth), binidx data (data.bin/.idx), an adapter run (run/)
and a jsonl file (in.jsonl); "{w}" in an argument is that directory.
"""

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import src.data.make_data
import src.model.init
import src.peft.merge
import src.train.trainer
from src.data import BinIdx
from src.data.make_data import make_data
from src.model import RWKV7Config, RWKVState, load_rwkv6
from src.peft import PeftConfig, apply_peft, save_adapter
from src.utils.atomic import WriteError, atomic_torch_save, atomic_write_text, umask
from tests.data.test_binidx import write_tokens

COMMANDS = {"train": src.train.trainer.main, "merge": src.peft.merge.main, "make_data": src.data.make_data.main,
            "init_model": src.model.init.main}


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_fp32_checkpoint, sample_data, world_tokenizer):
    w = tmp_path_factory.mktemp("world")
    (w / "base.pth").write_bytes(Path(tiny_fp32_checkpoint).read_bytes())
    for ext in (".bin", ".idx"):
        (w / f"data{ext}").write_bytes(Path(f"{sample_data}{ext}").read_bytes())
    model = apply_peft(load_rwkv6(w / "base.pth"), PeftConfig("bone", 16), verbose=False)
    save_adapter(model, None, w / "run" / "checkpoint-000003", step=3)
    (w / "in.jsonl").write_text('{"text": "hello"}\n')
    (w / "small.json").write_text('{"n_layer": 1, "n_embd": 64, "vocab_size": 1000}')
    (w / "surrogate.jsonl").write_text('{"text": "a\\ud800b"}\n')
    (w / "deep.jsonl").write_text('{"text": ' + "[" * 100_000 + "\n")
    (w / "empty_sft.jsonl").write_text('{"prompt": "", "response": ""}\n' * 3)
    make_data(w / "empty_sft.jsonl", w / "empty_sft", world_tokenizer)
    tokens = BinIdx(w / "data").tokens.astype(np.int32)
    tokens[len(tokens) // 2] = -5                             # an id no vocabulary has, deep inside
    write_tokens(w / "negative", tokens, np.int32)
    (w / "a_file").write_text("x")
    (w / "garbage_state.pth").write_bytes(b"101")
    (w / "empty_state.pth").write_bytes(b"")
    v6 = load_rwkv6(w / "base.pth").config                  # an RWKV-7 state of the base's shapes
    RWKVState.zeros(RWKV7Config(n_layer=v6.n_layer, n_embd=v6.n_embd, vocab_size=v6.vocab_size)).save(w / "v7_state.pth")
    (w / "mixed.jsonl").write_text('{"prompt": "q", "response": "a", "text": "t"}\n')
    idx = (w / "data.idx").read_bytes()                     # the same index, its dtype code 6: float64
    (w / "float_data.idx").write_bytes(idx[:17] + bytes([6]) + idx[18:])
    (w / "float_data.bin").write_bytes(b"\0" * (BinIdx(w / "data").num_tokens * 8))
    (w / "a_dir").mkdir()
    return w


TRAIN = ["--load_model", "{w}/base.pth", "--data", "{w}/data", "--gpus", "0", "--ctx_len", "32", "--steps", "2",
         "--progress_bar", "0", "--proj_dir", "{w}/newrun"]
MERGE = ["--base", "{w}/base.pth", "--bone", "{w}/run"]

CASES = [
    ("negative lr", "train", [*TRAIN, "--lr_init", "-1e-3"], "--lr_init and --lr_final must be positive, got -0.001"),
    ("lr that overflows Adam", "train", [*TRAIN, "--lr_init", "1e38"], "--lr_init 1e+38 is too large: Adam's first"),
    ("infinite lr", "train", [*TRAIN, "--lr_init", "inf"], "--lr_init must be a finite number, got inf"),
    ("nan beta", "train", [*TRAIN, "--beta1", "nan"], "--beta1 must be a finite number, got nan"),
    ("proj_dir is a file", "train", [*TRAIN, "--proj_dir", "{w}/a_file"], "--proj_dir {w}/a_file is a file"),
    ("lr_final above lr_init", "train", [*TRAIN, "--lr", "1e-4", "--lr_final", "1e-3"], "the learning rate would rise"),
    ("steps not a multiple of epochs", "train", [*TRAIN, "--steps", "5", "--epoch_count", "2"],
     "--steps 5 is not a multiple of --epoch_count 2"),
    ("adapter flags with --peft none", "train", [*TRAIN, "--peft", "none", "--rank", "8"],
     "--peft_r does not apply to --peft none"),
    ("a rank for state tuning", "train", [*TRAIN, "--peft", "state", "--rank", "8"],
     "--peft_r does not apply to --peft state"),
    ("a negative chunk_ctx", "train", [*TRAIN, "--chunk_ctx", "-4"], "--chunk_ctx must not be negative, got -4"),
    ("a missing state file", "train", [*TRAIN, "--peft", "state", "--load_state", "nowhere.pth"],
     "--load_state nowhere.pth does not exist"),
    ("a LoRA flag for Bone", "train", [*TRAIN, "--peft", "bone", "--lora_alpha", "4", "--lora_dropout", "0.1"],
     "--lora_alpha, --lora_dropout do not apply to --peft bone"),
    ("negative seed", "train", [*TRAIN, "--seed", "-1"], "--seed must be in [0, 2^32), got -1"),
    ("empty proj_dir", "train", [*TRAIN, "--proj_dir", ""], "--proj_dir is empty"),
    ("the CUDA kernel on a CPU", "train", [*TRAIN, "--wkv_backend", "cuda"], "--wkv_backend cuda runs on a GPU"),
    ("a binary config file", "train", [*TRAIN, "--config", "{w}/base.pth"], "--config {w}/base.pth is not a text file"),
    ("load_model is a directory", "train", [*TRAIN, "--load_model", "{w}/a_dir"],
     "--load_model {w}/a_dir is a directory"),
    ("sft data with nothing to learn", "train", [*TRAIN, "--data", "{w}/empty_sft", "--data_type", "sft"],
     "empty_sft: no sample has a target token to learn from"),
    ("data beyond the vocabulary names the flag", "train", [*TRAIN, "--load_model", "", "--model", "{w}/small.json"],
     "--data_file {w}/data holds token "),
    ("data beyond the vocabulary", "train", [*TRAIN, "--load_model", "", "--model", "{w}/small.json"],
     "but the model's vocabulary has 1000 tokens (0..999)"),
    ("a negative token id", "train", [*TRAIN, "--data", "{w}/negative"],
     "--data_file {w}/negative holds token -5, but the model's vocabulary has 65536 tokens (0..65535)"),
    ("a negative token id in the validation data", "train", [*TRAIN, "--val_data", "{w}/negative"],
     "--val_data {w}/negative holds token -5, but the model's vocabulary has 65536 tokens (0..65535)"),
    ("a quantised base for full fine-tuning", "train", [*TRAIN, "--peft", "none", "--quant", "nf4"],
     "--quant nf4 holds the base frozen and quantised: full fine-tuning (--peft none) cannot train it"),
    ("a block size the layers cannot take", "train", [*TRAIN, "--quant", "nf4", "--quant_blocksize", "256"],
     "--quant nf4: layer blocks.0.att.receptance (128 x 128) cannot be quantised: its 128 inputs are not a whole "
     "number of blocks of 256"),
    ("an unknown quantisation type", "train", [*TRAIN, "--quant", "nf3"], "--quant"),
    ("a dequantized merge of an adapter trained in full precision", "merge",
     [*MERGE, "--output", "{w}/m.pth", "--merge_base", "dequantized"],
     "--merge_base dequantized: adapter {w}/run/checkpoint-000003 was trained on a full-precision base"),
    ("merge over the adapter it reads", "merge", [*MERGE, "--output", "{w}/run/checkpoint-000003/adapter.pth",
                                                  "--overwrite"], "is one of this command's inputs"),
    ("merge over the base", "merge", [*MERGE, "--output", "{w}/base.pth", "--overwrite"],
     "is one of this command's inputs ({w}/base.pth)"),
    ("merge into a directory", "merge", [*MERGE, "--output", "{w}/a_dir"], "--output {w}/a_dir is a directory"),
    ("merge over a file", "merge", [*MERGE, "--output", "{w}/a_file"], "{w}/a_file already exists; pass --overwrite"),
    ("make_data over a data set", "make_data", ["{w}/in.jsonl", "{w}/data"], "{w}/data.bin already exists; pass "
                                                                              "--overwrite"),
    ("make_data over its input", "make_data", ["{w}/data.bin", "{w}/data", "--overwrite"],
     "is one of this command's inputs"),
    ("make_data from a directory", "make_data", ["{w}/a_dir", "{w}/x"], "{w}/a_dir is a directory, not a .jsonl"),
    ("make_data into an empty prefix", "make_data", ["{w}/in.jsonl", "{w}/a_dir/"], "names no file"),
    ("make_data with a lone surrogate", "make_data", ["{w}/surrogate.jsonl", "{w}/x"],
     "surrogate.jsonl:1: 'text' holds '\\ud800', which is not text"),
    ("make_data with deep nesting", "make_data", ["{w}/deep.jsonl", "{w}/x"], "deep.jsonl:1: JSON nested too deeply"),
    ("merge with a check of no tokens", "merge", [*MERGE, "--output", "{w}/m.pth", "--check", "--check_tokens", "0"],
     "--check_tokens must be positive, got 0"),
    ("merge on an unknown device", "merge", [*MERGE, "--output", "{w}/m.pth", "--device", "foo"],
     "--device 'foo' is not a device"),
    ("merge with RWKV-PEFT flags for our adapter", "merge", [*MERGE, "--output", "{w}/m.pth", "--lora_alpha", "8"],
     "--lora_alpha is for RWKV-PEFT files"),
    ("a state file that is not a .pth", "train", [*TRAIN, "--peft", "state", "--load_state", "{w}/garbage_state.pth"],
     "cannot read state file {w}/garbage_state.pth: not a torch .pth (zip) file: it starts with b'101' (3 bytes)"),
    ("a state file of the other family", "train", [*TRAIN, "--peft", "state", "--load_state", "{w}/v7_state.pth"],
     "--load_state: state file {w}/v7_state.pth is for RWKV-7 (x070)"),
    ("an empty state file", "train", [*TRAIN, "--peft", "state", "--load_state", "{w}/empty_state.pth"],
     "cannot read state file {w}/empty_state.pth: empty file (0 bytes)"),
    ("data of float64 tokens", "train", [*TRAIN, "--data", "{w}/float_data"],
     "{w}/float_data.idx: its header gives the tokens of {w}/float_data.bin the dtype float64 (code 6)"),
    ("make_data with a line of two kinds", "make_data", ["{w}/mixed.jsonl", "{w}/x"],
     "mixed.jsonl:1: a record mixes the fields 'prompt', 'response', 'text' of text and sft records"),
    ("init_model into a directory", "init_model", ["--config", "tiny", "--out", "{w}/a_dir"],
     "--out {w}/a_dir is a directory"),
]


def fill(items, w):
    return [str(x).replace("{w}", str(w)) for x in items]


def snapshot(w: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(w.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command, argv, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(world, capsys, command, argv, message, world_tokenizer):
    before = snapshot(world)
    kwargs = {"tokenizer": world_tokenizer} if command == "make_data" else {}
    assert COMMANDS[command](fill(argv, world), **kwargs) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert fill([message], world)[0] in err, err
    assert snapshot(world) == before


# ------------------------------------------------------------------ full and read-only disks

def test_a_full_disk_is_named_not_a_traceback(tmp_path, monkeypatch):
    """torch.save reports a full disk as RuntimeError("... unexpected pos ..."); it becomes one line."""
    import shutil

    def full(obj, path):
        Path(path).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 4096 vs 2048")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 100, 0))
    (tmp_path / "m.pth").write_bytes(b"old")
    with pytest.raises(WriteError, match=r"cannot write .*m\.pth: no space left on device"):
        atomic_torch_save({}, tmp_path / "m.pth")
    assert (tmp_path / "m.pth").read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["m.pth"]


@pytest.mark.slow
def test_a_full_disk_during_training_stops_with_one_line(world, tmp_path, capsys, monkeypatch):
    import src.train.module as module_py

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(module_py, "save_adapter", no_space)
    argv = fill([*TRAIN, "--proj_dir", str(tmp_path / "run")], world)
    assert COMMANDS["train"](argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"train.py: error: cannot write {tmp_path / 'run' / 'checkpoint-000002'}: no space left on device"
    assert not list((tmp_path / "run").glob("*checkpoint-*"))


@pytest.mark.parametrize("command", ["make_data", "merge"])
def test_a_read_only_directory_is_named(world, tmp_path, capsys, monkeypatch, command, world_tokenizer):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    if command == "make_data":
        argv, kwargs = fill(["{w}/in.jsonl", str(tmp_path / "out")], world), {"tokenizer": world_tokenizer}
    else:
        argv, kwargs = fill([*MERGE, "--output", str(tmp_path / "m.pth")], world), {}
    assert COMMANDS[command](argv, **kwargs) == 2
    assert "read-only file system" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ what is written

def test_written_files_have_the_umask_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644 and umask() == 0o022
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
        assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(previous)


def test_make_data_accepts_a_byte_order_mark(tmp_path, world_tokenizer):
    (tmp_path / "bom.jsonl").write_bytes(b'\xef\xbb\xbf{"text": "The Eiffel tower is in the city of"}\n')
    assert make_data(tmp_path / "bom.jsonl", tmp_path / "d", world_tokenizer)["documents"] == 1
    assert BinIdx(tmp_path / "d").document(0).tolist()[:2] == [6699, 304]
