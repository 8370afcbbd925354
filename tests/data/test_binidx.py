"""src/data/binidx.py against a hand-built MMIDIDX file (the byte layout RWKV-LM reads)."""

import struct

import numpy as np
import pytest

from src.data.binidx import BinIdx, BinIdxWriter


def write_reference(prefix, documents):
    """Megatron/RWKV-LM MMIDIDX bytes built by hand: documents is a list of lists of items."""
    items = [np.asarray(item, dtype=np.uint16) for doc in documents for item in doc]
    sizes = [len(i) for i in items]
    pointers = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) * 2
    doc_idx = np.concatenate([[0], np.cumsum([len(d) for d in documents])]).astype(np.int64)
    with open(f"{prefix}.bin", "wb") as f:
        for item in items:
            f.write(item.tobytes())
    with open(f"{prefix}.idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", 8))
        f.write(struct.pack("<Q", len(items)) + struct.pack("<Q", len(doc_idx)))
        f.write(np.asarray(sizes, dtype=np.int32).tobytes() + pointers.tobytes() + doc_idx.tobytes())


DOCS = [[[5, 6, 7, 0]], [[10, 11], [12, 65535, 0]], [[1, 0]]]


def test_reads_hand_built_file(tmp_path):
    write_reference(tmp_path / "ref", DOCS)
    data = BinIdx(tmp_path / "ref")
    assert data.num_documents == 3 and data.num_tokens == 11 and data.dtype == np.uint16
    assert data.document(0).tolist() == [5, 6, 7, 0]
    assert [i.tolist() for i in data.document_items(1)] == [[10, 11], [12, 65535, 0]]
    assert data.window(3, 4).tolist() == [0, 10, 11, 12]


def test_writer_matches_reference_bytes(tmp_path):
    write_reference(tmp_path / "ref", DOCS)
    with BinIdxWriter(tmp_path / "ours") as writer:
        for doc in DOCS:
            writer.add_document(doc)
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"ours{ext}").read_bytes() == (tmp_path / f"ref{ext}").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.bin", "ours.idx", "ref.bin", "ref.idx"]


def test_writer_error_leaves_nothing_and_keeps_old_files(tmp_path):
    write_reference(tmp_path / "d", DOCS)
    before = (tmp_path / "d.idx").read_bytes()
    with pytest.raises(ValueError, match=r"must fit uint16 \(0..65535\), got 0..70000"):
        with BinIdxWriter(tmp_path / "d") as writer:
            writer.add_document([[1, 2]])
            writer.add_document([[0, 70000]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.bin", "d.idx"]
    assert (tmp_path / "d.idx").read_bytes() == before


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.idx does not exist"):
        BinIdx(tmp_path / "nope")
    write_reference(tmp_path / "d", DOCS)
    (tmp_path / "d.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"d\.bin does not exist"):
        BinIdx(tmp_path / "d")


def test_corrupt_files(tmp_path):
    write_reference(tmp_path / "d", DOCS)
    idx = (tmp_path / "d.idx").read_bytes()
    (tmp_path / "d.idx").write_bytes(b"NOTANIDX!" + idx[9:])
    with pytest.raises(ValueError, match="not an MMIDIDX index"):
        BinIdx(tmp_path / "d")
    (tmp_path / "d.idx").write_bytes(idx[:-8])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        BinIdx(tmp_path / "d")
    (tmp_path / "d.idx").write_bytes(idx)
    (tmp_path / "d.bin").write_bytes((tmp_path / "d.bin").read_bytes()[:-2])
    with pytest.raises(ValueError, match=r"describes 11 tokens of 2 bytes: \.bin and \.idx disagree"):
        BinIdx(tmp_path / "d")
    (tmp_path / "d.bin").write_bytes(b"\x00" * 22)
    (tmp_path / "d.idx").write_bytes(idx[:9] + struct.pack("<Q", 2) + idx[17:])
    with pytest.raises(ValueError, match="index version 2, expected 1"):
        BinIdx(tmp_path / "d")


@pytest.mark.parametrize("edit, message", [
    (lambda idx: idx[:20], r"d\.idx has 20 bytes, fewer than its 34-byte header: the file is truncated"),
    (lambda idx: idx[:34 + 4 * 4] + struct.pack("<q", 10**9) + idx[34 + 4 * 4 + 8:],
     r"d\.idx: item 0 points at byte 1000000000 for 4 tokens, outside .*d\.bin \(22 bytes\): the index is corrupt"),
    (lambda idx: idx[:34] + struct.pack("<i", -4) + idx[38:], r"item 0 has the negative size -4"),
])
def test_a_damaged_index_is_refused_when_opened(tmp_path, edit, message):
    """Each is read as an error naming the file, not as empty or wrong documents later."""
    write_reference(tmp_path / "d", DOCS)
    (tmp_path / "d.idx").write_bytes(edit((tmp_path / "d.idx").read_bytes()))
    with pytest.raises(ValueError, match=message):
        BinIdx(tmp_path / "d")


def test_check_vocabulary(tmp_path):
    """The data's largest token against a model's vocabulary, named; skipped when the token type cannot
    exceed it."""
    with BinIdxWriter(tmp_path / "d") as w:
        w.add_document([[1, 2, 999]])
    data = BinIdx(tmp_path / "d")
    data.check_vocabulary(1000)
    data.check_vocabulary(65536)                  # uint16 ids are always below 65536
    with pytest.raises(ValueError, match=r"--val_data x holds token 999, but the model's vocabulary has 999 tokens "
                                         r"\(0..998\)"):
        data.check_vocabulary(999, "--val_data x")


@pytest.mark.parametrize("code, dtype", [(6, "float64"), (7, "float64")])
def test_a_float_token_dtype_is_refused_naming_the_file_and_dtype(tmp_path, code, dtype):
    write_reference(tmp_path / "d", DOCS)
    idx = (tmp_path / "d.idx").read_bytes()
    (tmp_path / "d.idx").write_bytes(idx[:17] + struct.pack("<B", code) + idx[18:])
    (tmp_path / "d.bin").write_bytes(b"\x00" * 11 * 8)           # the size the header's dtype asks for
    with pytest.raises(ValueError) as e:
        BinIdx(tmp_path / "d")
    assert str(e.value) == (f"{tmp_path / 'd.idx'}: its header gives the tokens of {tmp_path / 'd.bin'} the dtype "
                            f"{dtype} (code {code}), not an integer type: token files hold integers (uint16, int32, int64)")


@pytest.mark.parametrize("code, dtype", [(1, np.uint8), (3, np.int16), (4, np.int32), (5, np.int64), (8, np.uint16)])
def test_integer_token_dtypes_are_read(tmp_path, code, dtype):
    tokens = np.asarray([5, 6, 7, 0], dtype=dtype)
    (tmp_path / "d.bin").write_bytes(tokens.tobytes())
    with open(tmp_path / "d.idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", code) + struct.pack("<QQ", 1, 2))
        f.write(np.asarray([4], np.int32).tobytes() + np.asarray([0], np.int64).tobytes()
                + np.asarray([0, 1], np.int64).tobytes())
    data = BinIdx(tmp_path / "d")
    assert data.dtype == np.dtype(dtype) and data.document(0).tolist() == [5, 6, 7, 0]


def write_tokens(prefix, tokens, dtype):
    """One document of `tokens` stored as `dtype`, whatever the values (the writer refuses ids below 0)."""
    with BinIdxWriter(prefix, dtype=dtype) as w:
        w.add_document([[0] * len(tokens)])
    open(f"{prefix}.bin", "wb").write(np.asarray(tokens, dtype=dtype).tobytes())


@pytest.mark.parametrize("tokens, dtype, vocab, bad", [
    ([1, 2, 999], np.uint16, 1000, None),
    ([1, 2, 999], np.uint16, 999, 999),
    ([1, 2, 65535], np.uint16, 65536, None),               # uint16 ids always fit 65536: not read
    ([3, -5, 7, -2], np.int32, 65536, -5),                 # a signed type: below 0 (the lowest named)
    ([3, -5, 70000], np.int32, 65536, -5),
    ([3, 70000, 7], np.int32, 65536, 70000),
    ([3, 4, 65535], np.int32, 65536, None),
    ([3, -1, 2**40], np.int64, 65536, -1),
    ([3, 2**40], np.int64, 65536, 2**40),
])
def test_check_vocabulary_by_token_type(tmp_path, tokens, dtype, vocab, bad):
    write_tokens(tmp_path / "d", tokens, dtype)
    data = BinIdx(tmp_path / "d")
    assert data.dtype == np.dtype(dtype)
    if bad is None:
        data.check_vocabulary(vocab, "--data_file d")
        return
    with pytest.raises(ValueError) as e:
        data.check_vocabulary(vocab, "--data_file d")
    assert str(e.value) == (f"--data_file d holds token {bad}, but the model's vocabulary has {vocab} tokens "
                            f"(0..{vocab - 1})")
