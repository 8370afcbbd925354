"""The values derived when not given, by one rule wherever the others come from (flags, files,
presets), printed at the start of a run and recorded in train_config.json:
    lr_final       lr_init / 10
    warmup_steps   10, or a tenth of the run when that is shorter
    val_every      the checkpoint interval (with --val_data)
    precision      bf16 on a GPU, fp32 on a CPU (bf16 matmuls are slow on most CPUs)
"""

from __future__ import annotations

from ...utils.options import format_value
from .train_config import DEFAULT_WARMUP, PEFT_FLAGS, TrainConfig


def derive(cfg: TrainConfig) -> dict[str, str]:
    """Fill the derived values left unset (None), in place; returns {field: how it was derived}."""
    derived = {}
    if cfg.lr_final is None:
        cfg.lr_final = cfg.lr_init / 10
        derived["lr_final"] = "lr_init / 10"
    if cfg.warmup_steps is None:
        cfg.warmup_steps = min(DEFAULT_WARMUP, cfg.total_steps // 10)
        derived["warmup_steps"] = (f"{DEFAULT_WARMUP}" if cfg.warmup_steps == DEFAULT_WARMUP
                                   else f"a tenth of the {cfg.total_steps}-step run")
    if cfg.val_every is None and cfg.val_data:
        cfg.val_every = cfg.save_every
        derived["val_every"] = "the checkpoint interval"
    if cfg.precision is None:
        on_gpu = cfg.resolved_accelerator == "gpu"
        cfg.precision = "bf16" if on_gpu else "fp32"
        derived["precision"] = "a GPU" if on_gpu else "no GPU: bf16 is slow on a CPU; --precision bf16 insists"
    return derived


def describe_derived(cfg: TrainConfig) -> str:
    """One line for the start of a run: each derived value and its rule."""
    def value(name: str):
        if name in PEFT_FLAGS and cfg.peft is not None:           # an adapter setting (e.g. peft_targets)
            return getattr(cfg.peft, PEFT_FLAGS[name])
        return getattr(cfg, name)
    return "; ".join(f"{name} {format_value(value(name))} ({rule})" for name, rule in cfg.derived.items())
