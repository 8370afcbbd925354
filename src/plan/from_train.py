"""The memory plan of a train.py run, from its TrainConfig: what the trainer prints as it starts.

    plan = estimate_for_train_config(cfg, model_config)     # cfg: src/train/config TrainConfig
    print(plan.summary_line())

The GPUs ZeRO partitions over are devices x num_nodes; the precision is cfg.precision (bf16 when it is
not set, as on a GPU; tf32 is planned as fp32). The quantisation fields are read when the TrainConfig
has them (--quant, --quant_blocksize, --quant_head), else the base is planned unquantised.
"""

from __future__ import annotations

from functools import lru_cache

from .plan import Plan, Planner
from .request import PlanRequest


def request_for_train_config(cfg, model_config) -> PlanRequest:
    """The PlanRequest of a TrainConfig; `model_config` is the run's RWKVConfig (the model's shapes)."""
    peft = cfg.peft
    precision = cfg.precision or "bf16"
    return PlanRequest(model=model_config, peft=peft.method if peft is not None else "none",
                       rank=(peft.r or 64) if peft is not None else 64, ctx_len=cfg.ctx_len, micro_bsz=cfg.micro_bsz,
                       gpus=cfg.devices * cfg.num_nodes, quant=getattr(cfg, "quant", "none") or "none",
                       quant_blocksize=getattr(cfg, "quant_blocksize", 64),
                       quant_head=bool(getattr(cfg, "quant_head", 0)), strategy=cfg.strategy,
                       grad_cp=bool(cfg.grad_cp), chunk_ctx=cfg.chunk_ctx, head_chunk=cfg.head_chunk,
                       precision="bf16" if precision == "bf16" else "fp32", adapter=peft)


def estimate_for_train_config(cfg, model_config, gpu_mem: float = 24.0) -> Plan:
    """The plan of a training run (no search: quick enough to print at the start of every run)."""
    return _estimate(request_for_train_config(cfg, model_config).replace(gpu_mem=gpu_mem))


@lru_cache(maxsize=16)
def _estimate(request: PlanRequest) -> Plan:
    """Plans are pure functions of their request: a process that starts several runs (the tests, the
    benchmarks) traces each model once."""
    return Planner().estimate(request)


def announce(cfg, model_config) -> list[str]:
    """What train.py prints as it starts: the plan's one line against this GPU's memory (on the CPU, against
    a 24 GiB card), and on a GPU a warning, before any weight is loaded, when the plan exceeds the card."""
    import torch

    on_gpu = cfg.resolved_accelerator == "gpu" and torch.cuda.is_available()
    if on_gpu:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        plan = estimate_for_train_config(cfg, model_config, gpu_mem=props.total_memory / 2**30)
        lines = [f"{plan.summary_line()} ({props.name})"]
        if not plan.fits:
            lines.append(f"warning: the memory plan exceeds this GPU's {props.total_memory / 2**30:.1f} GiB, so the run "
                         f"may run out of memory; `bash scripts/plan.sh {plan.request.flags()}` shows the largest "
                         f"ctx_len and micro_bsz that fit and the cheapest change that does")
        return lines
    plan = estimate_for_train_config(cfg, model_config)
    return [f"{plan.summary_line()} (on a GPU; this run is on the CPU)"]
