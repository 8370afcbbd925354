"""DeepSpeed through Lightning, on GPUs and on the CPU.

Lightning's DeepSpeedStrategy refuses a CPU accelerator, but DeepSpeed itself runs ZeRO on
the CPU with the gloo backend. `CPUDeepSpeedStrategy` lifts the three CUDA assumptions
(the accelerator check, the device-index check, the device rank passed to
deepspeed.initialize), so the very same training path runs in CI on a CPU, with one
process or several.
"""

from __future__ import annotations

import argparse

from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.strategies import DeepSpeedStrategy
from lightning.pytorch.strategies.ddp import DDPStrategy

# RWKV-LM's bucket sizes
BUCKET_SIZE = 200_000_000


class CPUDeepSpeedStrategy(DeepSpeedStrategy):
    strategy_name = "deepspeed_cpu"

    def setup_environment(self) -> None:
        DDPStrategy.setup_environment(self)                  # skip DeepSpeedStrategy's CUDA-only check

    def setup_distributed(self) -> None:
        reset_seed()                                         # (no device-index validation: CPUs have none)
        self.set_world_ranks()
        self._init_deepspeed_distributed()                   # gloo, chosen from the CPU root device

    def _setup_model_and_optimizer(self, model, optimizer, lr_scheduler=None):
        import deepspeed
        engine, deepspeed_optimizer, _, _ = deepspeed.initialize(
            args=argparse.Namespace(device_rank=self.local_rank),      # not root_device.index (None on CPU)
            config=self.config, model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad],
            optimizer=optimizer, lr_scheduler=lr_scheduler, dist_init_required=False)
        return engine, deepspeed_optimizer


def make_strategy(name: str, accelerator: str, micro_bsz: int) -> DeepSpeedStrategy:
    """deepspeed_stage_{1,2,2_offload,3,3_offload} -> a configured strategy. Checkpoints leave out
    the frozen base (exclude_frozen_parameters): they hold adapters and optimizer states only; torch's own
    linear stays in place under ZeRO-3 (below)."""
    stage = int(name.split("_")[2])
    offload = name.endswith("_offload")
    cls = CPUDeepSpeedStrategy if accelerator == "cpu" else DeepSpeedStrategy
    strategy = cls(stage=stage, offload_optimizer=offload, offload_parameters=offload and stage == 3,
                   exclude_frozen_parameters=True, logging_batch_size_per_gpu=micro_bsz,
                   allgather_bucket_size=BUCKET_SIZE, reduce_bucket_size=BUCKET_SIZE)
    # ZeRO-3's "memory efficient linear" replaces torch.nn.functional.linear for the rest of the process
    # (DeepSpeed never puts it back) with a function that saves every linear's input for the backward,
    # even under a frozen base weight: a Bone or state-tuning run would keep each adapted layer's input,
    # and every later model in the process would too. The native linear saves only what the gradients
    # need, and ZeRO-3 gathers the weights around each module all the same.
    strategy.config["zero_optimization"]["memory_efficient_linear"] = False
    return strategy
