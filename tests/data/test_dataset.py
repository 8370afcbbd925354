"""src/data/dataset.py: the three sampling modes, their masks, determinism and errors."""

import numpy as np
import pytest
import torch

from src.data import BinIdx, BinIdxWriter, TokenDataset


def make(tmp_path, documents, name="d"):
    with BinIdxWriter(tmp_path / name) as w:
        for d in documents:
            w.add_document(d)
    return BinIdx(tmp_path / name)


@pytest.fixture
def stream(tmp_path):
    rng = np.random.default_rng(0)
    return make(tmp_path, [[list(rng.integers(1, 60000, size=n)) + [0]] for n in (30, 7, 50, 12)])


def test_binidx_windows_cross_documents_and_shift(stream):
    ds = TokenDataset(stream, "binidx", ctx_len=16, seed=1, micro_bsz=2, num_batches=50)
    flat = np.asarray(stream.tokens, dtype=np.int64)
    crossed = False
    for j in range(len(ds)):
        x, y, mask = ds[j]
        assert x.dtype == torch.long and x.shape == y.shape == mask.shape == (16,)
        assert torch.equal(x[1:], y[:-1]) and bool(mask.all())
        starts = [s for s in range(len(flat) - 16) if np.array_equal(flat[s:s + 17], np.r_[x.numpy(), y[-1].item()])]
        assert starts, "a window that is not a slice of the token stream"
        crossed |= bool((x == 0).any())
    assert crossed, "no window crossed a document boundary in 100 samples"


def test_samples_depend_only_on_sample_number(stream):
    one = TokenDataset(stream, "binidx", ctx_len=8, seed=3, micro_bsz=2, num_batches=4)
    ranks = [TokenDataset(stream, "binidx", ctx_len=8, seed=3, micro_bsz=1, rank=r, world_size=2, num_batches=4)
             for r in range(2)]
    # 1 process x micro_bsz 2 and 2 processes x micro_bsz 1 see the same samples, batch by batch
    for b in range(4):
        for r in range(2):
            assert all(torch.equal(a, c) for a, c in zip(one[2 * b + r], ranks[r][b]))
    resumed = TokenDataset(stream, "binidx", ctx_len=8, seed=3, micro_bsz=2, first_batch=2, num_batches=2)
    assert all(torch.equal(a, c) for a, c in zip(one[5], resumed[1]))
    other_seed = TokenDataset(stream, "binidx", ctx_len=8, seed=4, micro_bsz=2, num_batches=4)
    assert not all(torch.equal(one[j][0], other_seed[j][0]) for j in range(8))


def test_pad_one_document_per_sample(tmp_path):
    docs = [[[1, 2, 3, 0]], [[4, 5, 6, 7, 8, 9, 0]], [[10, 0]]]
    data = make(tmp_path, docs)
    ds = TokenDataset(data, "pad", ctx_len=5, seed=0, micro_bsz=1, num_batches=6)
    seen = []
    for j in range(6):
        x, y, mask = ds[j]
        full = np.r_[x.numpy(), y[-1].item()]
        doc = next(d[0] for d in docs if d[0][:2] == full[:2].tolist())
        n = min(len(doc), 6)
        assert full[:n].tolist() == doc[:n] and not full[n:].any()
        assert mask.tolist() == [1.0] * (n - 1) + [0.0] * (6 - n)
        seen.append(doc[0])
    assert sorted(seen[:3]) == sorted(seen[3:]) == [1, 4, 10]      # every document once per pass


def test_sft_loss_only_on_response(tmp_path):
    data = make(tmp_path, [[[1, 2, 3], [4, 5, 0]], [[6], [7, 8, 9, 0]]])
    ds = TokenDataset(data, "sft", ctx_len=6, seed=0, micro_bsz=1, num_batches=2)
    for j in range(2):
        x, y, mask = ds[j]
        targets = y[mask.bool()].tolist()
        assert targets in ([4, 5, 0], [7, 8, 9, 0])


def test_errors(tmp_path, stream):
    with pytest.raises(ValueError, match=r"has 103 tokens, fewer than one window of ctx_len \+ 1 = 201: lower"):
        TokenDataset(stream, "binidx", ctx_len=200)
    with pytest.raises(ValueError, match="data_type must be one of"):
        TokenDataset(stream, "jsonl", ctx_len=8)
    with pytest.raises(ValueError, match="not written from prompt/response or messages records"):
        TokenDataset(stream, "sft", ctx_len=8)
    long_prompts = make(tmp_path, [[[1] * 10, [2, 0]]], name="long")
    with pytest.raises(ValueError, match="every prompt is at least ctx_len = 8 tokens long"):
        TokenDataset(long_prompts, "sft", ctx_len=8)
    empty = make(tmp_path, [], name="empty")
    with pytest.raises(ValueError, match="has no documents"):
        TokenDataset(empty, "pad", ctx_len=8)
