"""PlanRequest: the run a memory plan is for (the planner's flags, validated).

    PlanRequest(model="rwkv7-13.3b", peft="bone", rank=64, ctx_len=4096, quant="nf4")

Every field is one flag of `bash scripts/plan.sh` (cli.py builds its parser from `FLAGS` below) and
mirrors a train.py flag of the same name; a bad value is a ValueError naming the flag and the value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..peft import PeftConfig
from ..peft.registry import PEFT_METHODS, STATE_METHOD
from ..quant.scheme import BLOCKSIZES, QUANT_TYPES, QuantScheme
from ..train.config.train_config import STRATEGIES

PRECISIONS = ("bf16", "fp32")
QUANT_CHOICES = ("none", *QUANT_TYPES)


@dataclass(frozen=True)
class PlanRequest:
    model: str = "rwkv7-1.5b"          # a preset, a config .json or a .pth (or an RWKVConfig, from Python)
    peft: str = "bone"                 # an adapter method, "state", or "none" (full fine-tuning)
    rank: int = 64
    ctx_len: int = 4096
    micro_bsz: int = 1
    gpus: int = 1                      # GPUs in the whole run (devices x nodes): ZeRO partitions over them
    gpu_mem: float = 24.0              # GiB per GPU
    quant: str = "none"
    quant_blocksize: int = 64
    quant_head: bool = False
    strategy: str = "deepspeed_stage_1"
    grad_cp: bool = True
    chunk_ctx: int = 0
    head_chunk: int = 0
    precision: str = "bf16"
    adapter: PeftConfig | None = None  # the exact PeftConfig (targets, options) when known: train.py's

    def __post_init__(self) -> None:
        def bad(flag: str, value, why: str) -> ValueError:
            return ValueError(f"--{flag} {value}: {why}")

        for flag in ("rank", "ctx_len", "micro_bsz", "gpus"):
            value = getattr(self, flag)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(flag, value, "must be a positive whole number")
        for flag in ("chunk_ctx", "head_chunk"):
            value = getattr(self, flag)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad(flag, value, "must be 0 (off) or a positive whole number")
        if not isinstance(self.gpu_mem, (int, float)) or not self.gpu_mem > 0:
            raise bad("gpu_mem", self.gpu_mem, "must be a positive number of GiB")
        if self.peft not in (*PEFT_METHODS, "none"):
            raise bad("peft", self.peft, f"use one of {', '.join((*PEFT_METHODS, 'none'))}")
        if self.quant not in QUANT_CHOICES:
            raise bad("quant", self.quant, f"use one of {', '.join(QUANT_CHOICES)}")
        if self.quant_blocksize not in BLOCKSIZES:
            raise bad("quant_blocksize", self.quant_blocksize, f"use one of {', '.join(map(str, BLOCKSIZES))}")
        if self.strategy not in STRATEGIES:
            raise bad("strategy", self.strategy, f"use one of {', '.join(STRATEGIES)}")
        if self.precision not in PRECISIONS:
            raise bad("precision", self.precision, f"use one of {', '.join(PRECISIONS)}")
        if self.quant != "none" and self.peft == "none":
            raise bad("quant", self.quant, "a quantised base is frozen: choose an adapter method with --peft")

    def peft_config(self) -> PeftConfig | None:
        if self.adapter is not None:
            return self.adapter
        if self.peft == "none":
            return None
        if self.peft == STATE_METHOD:
            return PeftConfig(method=STATE_METHOD)
        return PeftConfig(method=self.peft, r=self.rank)

    def quant_scheme(self) -> QuantScheme | None:
        if self.quant == "none":
            return None
        return QuantScheme(self.quant, blocksize=self.quant_blocksize, head=bool(self.quant_head))

    def replace(self, **changes) -> "PlanRequest":
        return dataclasses.replace(self, **changes)

    def flags(self) -> str:
        """The request as planner flags (what to pass to reproduce it)."""
        return " ".join(f"--{f.name} {int(v) if isinstance(v, bool) else v}"
                        for f in dataclasses.fields(self) if f.name != "adapter" for v in [getattr(self, f.name)])
