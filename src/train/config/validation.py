"""`validate`: the configuration's values checked alone (no file, no model, no data: the run's
preflight, src/train/preflight.py, checks those). A problem is a one-line ValueError naming the flag."""

from __future__ import annotations

import dataclasses
import math

from .train_config import TrainConfig

FLOAT32_MAX = 3.4028234663852886e38


def validate(cfg: TrainConfig) -> None:
    """Check the values alone (no files, no model, no data: the run's preflight does those).
    A problem is a one-line ValueError naming the flag."""
    unset = [name for name in ("lr_final", "warmup_steps", "precision") if getattr(cfg, name) is None]
    if unset:
        raise ValueError(f"TrainConfig: {', '.join(unset)} unset; build the configuration with config_from_values "
                         f"(or call derive) to derive them")
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{f.name} must be a finite number, got {value}")
        choices = f.metadata.get("choices") if f.metadata else None
        if choices and value not in choices:
            raise ValueError(f"--{f.name} {value!r} is not one of {', '.join(choices)}")
        minimum = f.metadata.get("minimum") if f.metadata else None
        if minimum is not None and value is not None and value < minimum:
            rule = "must not be negative" if minimum == 0 else "must be positive" if minimum == 1 \
                else f"must be at least {minimum}"
            raise ValueError(f"--{f.name} {rule}, got {value}")
    if cfg.quant != "none" and cfg.peft is None:
        raise ValueError(f"--quant {cfg.quant} holds the base frozen and quantised: full fine-tuning (--peft none) "
                         f"cannot train it; choose an adapter (--peft bone, lora, ...) or state tuning (--peft state)")
    if not (cfg.lr_init > 0 and cfg.lr_final > 0):
        raise ValueError(f"--lr_init and --lr_final must be positive, got {cfg.lr_init} and {cfg.lr_final}")
    if cfg.lr_final > cfg.lr_init and cfg.lr_schedule != "constant":
        raise ValueError(f"--lr_final {cfg.lr_final:g} is above --lr_init {cfg.lr_init:g}: the learning rate would "
                         f"rise over the run; give a smaller --lr_final (or leave it out: lr_init / 10)")
    if not (0 <= cfg.beta1 < 1 and 0 <= cfg.beta2 < 1):
        raise ValueError(f"--beta1 and --beta2 must be in [0, 1), got {cfg.beta1} and {cfg.beta2}")
    if cfg.lr_init / (1 - cfg.beta1) >= FLOAT32_MAX:
        raise ValueError(f"--lr_init {cfg.lr_init:g} is too large: Adam's first update, lr / (1 - beta1) = "
                         f"{cfg.lr_init / (1 - cfg.beta1):g}, does not fit in float32 (at most {FLOAT32_MAX:.3g})")
    if cfg.adam_eps <= 0:
        raise ValueError(f"--adam_eps must be positive, got {cfg.adam_eps}")
    if cfg.warmup_steps >= cfg.total_steps and cfg.total_steps > 1:
        raise ValueError(f"--warmup_steps {cfg.warmup_steps} leaves no steps of the {cfg.total_steps} to train after the "
                         f"warmup; give a smaller --warmup_steps")
    if cfg.strategy.endswith("offload") and cfg.resolved_accelerator == "cpu":
        raise ValueError(f"--strategy {cfg.strategy} offloads to the CPU from a GPU; on a CPU use deepspeed_stage_1/2/3")
    if not 0 <= cfg.seed < 2**32:
        raise ValueError(f"--seed must be in [0, 2^32), got {cfg.seed}")
    if not cfg.proj_dir.strip():
        raise ValueError("--proj_dir is empty: give the run's directory")
    if (cfg.val_every is not None or cfg.val_windows) and not cfg.val_data:
        raise ValueError("--val_every and --val_windows set how --val_data is used: give --val_data PREFIX")
    if cfg.load_state and not (cfg.peft is not None and cfg.peft.train_state):
        raise ValueError(f"--load_state {cfg.load_state} starts the tuned initial states, but this run tunes none: add "
                         f"--train_state 1 (or use --peft state)")
    if cfg.objective != "lm" and cfg.peft is None:
        raise ValueError(f"--objective {cfg.objective} takes its reference policy from the base with the adapters "
                         f"switched off: full fine-tuning (--peft none) holds no base apart; choose an adapter (--peft "
                         f"bone, lora, ...) or state tuning (--peft state)")
    if cfg.objective != "lm" and cfg.data_type != "binidx":
        raise ValueError(f"--data_type {cfg.data_type} is for --objective lm; --objective {cfg.objective} reads its "
                         f"own data ({'preference pairs' if cfg.objective == 'dpo' else 'a .jsonl of prompts'})")
    if cfg.objective == "grpo" and cfg.val_data:
        raise ValueError("--val_data validates the language-model or DPO loss; --objective grpo logs its rewards "
                         "every step instead: leave --val_data out")
    if not cfg.dpo_label_smoothing < 0.5:
        raise ValueError(f"--dpo_label_smoothing must be below 0.5 (at 0.5 the labels say nothing), got "
                         f"{cfg.dpo_label_smoothing}")
    if not (cfg.temperature > 0 and 0 < cfg.top_p <= 1):
        raise ValueError(f"--temperature must be positive and --top_p in (0, 1], got {cfg.temperature} and {cfg.top_p}")
    if cfg.objective == "grpo" and cfg.max_new_tokens >= cfg.ctx_len:
        raise ValueError(f"--max_new_tokens {cfg.max_new_tokens} leaves no room for a prompt in --ctx_len "
                         f"{cfg.ctx_len}: raise --ctx_len")
    on_cpu = cfg.resolved_accelerator == "cpu"
    if cfg.wkv_backend == "cuda" and on_cpu:
        raise ValueError("--wkv_backend cuda runs on a GPU; on a CPU use chunked (or auto)")
    if cfg.wkv_backend == "cuda_emulated" and (not on_cpu or cfg.precision != "bf16"):
        raise ValueError("--wkv_backend cuda_emulated runs the CUDA kernel's source on a CPU, in bf16: it needs "
                         "--gpus 0 --precision bf16 (it is slow: for tests)")
