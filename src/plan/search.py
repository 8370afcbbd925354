"""The largest ctx_len and micro_bsz that fit, and the cheapest change that makes a plan fit.

    plan = plan_with_search(Planner(), request)       # estimate + max_ctx_len, max_micro_bsz, suggestion

Both maxima are binary searches over the estimate (it grows with the tokens), up to MAX_CTX_LEN and
MAX_MICRO_BSZ. The suggestion tries, in order of what they cost in speed and quality, the changes
CHANGES names, first each alone, then added up in that order; the first request that fits is given
as its flags. Failing all, it says how many tokens fit.
"""

from __future__ import annotations

from .plan import Plan, Planner
from .request import PlanRequest

MAX_CTX_LEN = 1 << 20
MAX_MICRO_BSZ = 1024


def _largest(fits, high: int) -> int:
    """The largest n in [1, high] with fits(n) (fits is monotone: true, then false), 0 if none."""
    if not fits(1):
        return 0
    low = 1
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def max_ctx_len(planner: Planner, r: PlanRequest) -> int:
    return _largest(lambda n: planner.estimate(r.replace(ctx_len=n)).fits, MAX_CTX_LEN)


def max_micro_bsz(planner: Planner, r: PlanRequest) -> int:
    return _largest(lambda n: planner.estimate(r.replace(micro_bsz=n)).fits, MAX_MICRO_BSZ)


def changes(r: PlanRequest) -> list[tuple[str, dict]]:
    """The candidate changes for a request, cheapest first: (flags, fields)."""
    out = []
    if not r.grad_cp:
        out.append(("--grad_cp 1", {"grad_cp": True}))
    if not r.head_chunk:
        out.append(("--head_chunk 1024", {"head_chunk": 1024}))
    for chunk in (4096, 2048, 1024, 512):
        if chunk < r.ctx_len and (not r.chunk_ctx or chunk < r.chunk_ctx):
            out.append((f"--chunk_ctx {chunk}", {"chunk_ctx": chunk}))
            break
    if r.quant == "none" and r.peft != "none":
        out.append(("--quant nf4", {"quant": "nf4"}))
    if r.strategy in ("deepspeed_stage_1", "deepspeed_stage_2"):
        out.append(("--strategy deepspeed_stage_2_offload", {"strategy": "deepspeed_stage_2_offload"}))
    if r.strategy != "deepspeed_stage_3_offload" and r.quant == "none":
        out.append(("--strategy deepspeed_stage_3_offload", {"strategy": "deepspeed_stage_3_offload"}))
    return out


def suggestion(planner: Planner, r: PlanRequest) -> str | None:
    """The first change (or sum of changes) that makes the plan fit; None when it already fits."""
    if planner.estimate(r).fits:
        return None
    options = changes(r)
    for flags, fields in options:
        if planner.estimate(r.replace(**fields)).fits:
            return flags
    flags, fields = [], {}
    for flag, change in options:
        flags.append(flag)
        fields.update(change)
        if planner.estimate(r.replace(**fields)).fits:
            return " ".join(flags)
    tokens = max_ctx_len(planner, r.replace(**fields)) if fields else 0
    if tokens:
        return f"{' '.join(flags)} --ctx_len {tokens} (fewer tokens)"
    return "nothing tried fits: use a GPU with more memory, or more GPUs with ZeRO-3"


def plan_with_search(planner: Planner, r: PlanRequest) -> Plan:
    """The plan with its largest ctx_len, largest micro_bsz and, when it does not fit, a suggestion."""
    plan = planner.estimate(r)
    plan.max_ctx_len = max_ctx_len(planner, r)
    plan.max_micro_bsz = max_micro_bsz(planner, r)
    plan.suggestion = suggestion(planner, r)
    return plan
