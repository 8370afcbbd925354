"""The memory planner: a training run's peak GPU memory, estimated component by component.

    from src.plan import Planner, PlanRequest, estimate_for_train_config
    plan = Planner().estimate(PlanRequest(model="rwkv7-13.3b", peft="bone", rank=64, ctx_len=4096, quant="nf4"))
    plan.components, plan.peak_bytes, plan.fits, plan.summary_line()

    bash scripts/plan.sh --model rwkv7-13.3b --peft bone --rank 64 --ctx_len 4096 --quant nf4   # + search

    request.py      PlanRequest: the run (the planner's flags)
    shapes.py       the model's config and tensors, built on the meta device by the family's own code
    trace.py        Holdings: what a forward keeps alive, counted on the meta device
    kernels.py      what the WKV CUDA kernels keep and allocate
    activations.py  activations kept for the backward (grad_cp, infctx) from traces
    head.py         the head and the loss (head_chunk) from traces
    zero.py         DeepSpeed ZeRO's placement of weights, gradients, optimizer states
    plan.py         Plan and Planner: the components, their sum, whether it fits
    search.py       the largest ctx_len and micro_bsz, the cheapest change that fits
    from_train.py   estimate_for_train_config: the plan of a train.py run
    measured.py     the estimate against a measured peak (a CSV row)
    against_table.py  the estimate against the benchmark table's measured rows and the paper's (gpu_checks.sh)
    table.py        docs/memory.md's table of presets x methods
    cli.py          scripts/plan.sh (python -m src.plan)
"""

from .from_train import estimate_for_train_config
from .measured import compare_row
from .plan import Plan, Planner
from .request import PlanRequest

__all__ = ["Plan", "Planner", "PlanRequest", "estimate_for_train_config", "compare_row"]
