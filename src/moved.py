"""Module paths that moved when src/ was grouped by what each part is keep working.

`from src.trainer import run`, `from src.config import RWKV6Config`, `python -m src.bench_wkv`:
each old name is a small module that looks its attributes up in the modules its contents
moved to (in order), and runs the first of them under `python -m`. The new paths are the
ones to use; these are for code and commands written against the old ones.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

MOVED: dict[str, tuple[str, ...]] = {
    "src.atomic": ("src.utils.atomic",),
    "src.bench_wkv": ("src.bench.wkv", "src.bench.device", "src.bench.report"),
    "src.callbacks": ("src.train.callbacks", "src.train.module"),
    "src.config": ("src.model.config", "src.utils.options", "src.utils.paths"),
    "src.deepspeed_strategy": ("src.train.strategy",),
    "src.merge": ("src.peft.merge",),
    "src.run_dir": ("src.train.run_dir",),
    "src.tokenizer": ("src.data.tokenizer",),
    "src.train_config": ("src.train.config",),
    "src.trainer": ("src.train.trainer", "src.train.module", "src.train.loss", "src.train.schedule"),
}
# names that changed as well: (old module, old name) -> (module, name)
RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("src.config", "PRESET_DIR"): ("src.utils.paths", "MODEL_PRESETS"),
}


def lookup(old: str, name: str):
    for target in MOVED[old]:
        module = importlib.import_module(target)
        if hasattr(module, name):
            return getattr(module, name)
    if (old, name) in RENAMED:
        target, new_name = RENAMED[(old, name)]
        return getattr(importlib.import_module(target), new_name)
    raise AttributeError(f"module {old!r} (moved to {MOVED[old][0]}) has no attribute {name!r}")


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name; loads it as a module forwarding to the new ones."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        module = types.ModuleType(spec.name, f"Moved to {', '.join(MOVED[spec.name])} (see src/moved.py).")
        module.__getattr__ = lambda name: lookup(spec.name, name)
        module.__dir__ = lambda: sorted({n for t in MOVED[spec.name] for n in dir(importlib.import_module(t))})
        return module

    def exec_module(self, module) -> None:
        pass

    def get_code(self, fullname):
        """`python -m OLD` runs the module it moved to as __main__."""
        return compile(f"import runpy\nrunpy.run_module({MOVED[fullname][0]!r}, run_name='__main__', alter_sys=True)\n",
                       f"<{fullname}, moved to {MOVED[fullname][0]}>", "exec")

    def is_package(self, fullname) -> bool:
        return False


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
