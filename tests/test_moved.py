"""src/moved.py: the module paths from before src/ was grouped still import, as the modules themselves."""

import importlib

import pytest

from src.moved import MOVED


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_old_paths_are_the_new_modules(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)
    assert importlib.import_module(new).__spec__.name == new


def test_the_names_users_import():
    from src.config import RWKV6Config
    from src.model import RWKV6Config as same
    from src.train_config import parse_args
    from src.trainer import L2Wrap, lr_at, main, masked_cross_entropy, run
    from src.init_model import init_rwkv6, main as init_main
    from src.bench import goals, matmul_parameters
    assert RWKV6Config is same and parse_args(["--peft_r", "8"]).peft.r == 8
    assert all(callable(f) for f in (L2Wrap.apply, lr_at, main, masked_cross_entropy, run, init_rwkv6, init_main,
                                     goals, matmul_parameters))
