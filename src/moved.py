"""Module paths that moved when src/ was grouped by what each part is. `import src.trainer` and
`from src.config import RWKV6Config` keep working: each old name is the new module itself (not a
copy), registered under the old name on first import."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

MOVED = {
    "src.atomic": "src.utils.atomic",
    "src.bench_wkv": "src.bench.wkv",
    "src.callbacks": "src.train.callbacks",
    "src.config": "src.model.config",
    "src.deepspeed_strategy": "src.train.strategy",
    "src.merge": "src.peft.merge",
    "src.run_dir": "src.train.run_dir",
    "src.tokenizer": "src.data.tokenizer",
    "src.train_config": "src.train.config",
    "src.trainer": "src.train",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and loads it as the module it moved to."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__          # restored by exec_module: the module keeps its own spec
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = module.__spec__.loader_state


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
