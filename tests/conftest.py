import pytest
import torch

from src.data import WorldTokenizer
from src.model import RWKV6Config, save_rwkv6
from src.model import init_model
from src.utils.paths import SAMPLE_DATA


@pytest.fixture(scope="session")
def tiny_config() -> RWKV6Config:
    return RWKV6Config.preset("tiny")


@pytest.fixture(scope="session")
def tiny_fp32_checkpoint(tmp_path_factory, tiny_config):
    """The tiny preset, RWKV-LM init with the zero tensors randomised, saved in fp32."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny-fp32.pth"
    save_rwkv6(init_model(tiny_config, seed=3, nonzero=True), path, dtype=torch.float32)
    return path


@pytest.fixture(scope="session")
def world_tokenizer() -> WorldTokenizer:
    """One World tokenizer for the whole run: building one reads its 65536-token vocabulary (about a second)."""
    return WorldTokenizer()


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory, world_tokenizer):
    """data/sample.jsonl as binidx (50 documents, about 2,000 tokens): the prefix."""
    from src.data.make_data import make_data

    prefix = tmp_path_factory.mktemp("data") / "sample"
    make_data(SAMPLE_DATA / "sample.jsonl", prefix, tokenizer=world_tokenizer)
    return prefix


@pytest.fixture(scope="session")
def tiny_bases(tmp_path_factory) -> dict:
    """{family: path}: a random non-zero tiny base of every registered family (RWKV-LM init with the zero
    tensors randomised, seed 3), saved in fp32; shared by every test that needs one per family."""
    from src.model import families, get_family, save_checkpoint
    out = {}
    for family in families():
        config = get_family(family.name).config_class.preset("tiny")
        path = tmp_path_factory.mktemp(f"tiny-{family.name}") / "base.pth"
        save_checkpoint(init_model(config, seed=3, nonzero=True), path, dtype=torch.float32)
        out[family.name] = path
    return out


@pytest.fixture(autouse=True, scope="module")
def _hand_back_freed_memory():
    """After each test module, the freed C heap goes back to the system: one process runs every test, and a
    heap grown by the benchmarks' and trainers' tensors (kept by glibc as free holes) slows the rest."""
    yield
    from src.quant.weight import release_freed_host_memory
    release_freed_host_memory()
