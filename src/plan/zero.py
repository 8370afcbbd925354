"""Where DeepSpeed ZeRO keeps the weights, gradients and optimizer states of a run, per GPU.

    zero = ZeroLayout("deepspeed_stage_2", world=4)
    zero.frozen(tensors.frozen)          # bytes of the frozen base on each GPU
    zero.optimizer(tensors.trainable_count)

The trainer's strategies (src/train/strategy.py make_strategy; DeepSpeed's ZeRO paper, Rajbhandari
et al. 2020, and deepspeed/runtime/zero/stage_1_and_2.py, stage3.py):

    stage        parameters (frozen, trainable)    gradients          optimizer states
    1            whole                             whole              / world
    2            whole                             / world            / world
    3            / world                           / world            / world
    _offload     stage 3: on the CPU               as the stage       on the CPU

Optimizer states are AdamW's exp_avg and exp_avg_sq in fp32 plus DeepSpeed's fp32 master copy of
every trainable value (ZeRO 1-2 keep `single_partition_of_fp32_groups`, also when the parameters
already are fp32, as the adapters are): 12 bytes a trainable value. Gradients are in the
parameter's dtype (fp32 adapters, bf16 tuned states).

Workspace of its own: ZeRO 1-2 with Lightning's defaults (contiguous_gradients, overlap_comm) fill
two gradient buckets of reduce_bucket_size elements (BUCKET_SIZE, 2e8, src/train/strategy.py) per
gradient dtype (stage_1_and_2.py `setup_buckets`); ZeRO-3 one bucket, and it gathers the
parameters of about two blocks at a time (the one running and the one prefetched).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..train.config.train_config import STRATEGIES
from ..train.strategy import BUCKET_SIZE

OPTIMIZER_BYTES_PER_VALUE = 4 + 4 + 4        # fp32 master copy, exp_avg, exp_avg_sq


@dataclass(frozen=True)
class ZeroLayout:
    strategy: str
    world: int

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy {self.strategy!r}: use one of {', '.join(STRATEGIES)}")

    @property
    def stage(self) -> int:
        return int(self.strategy.split("_")[2])

    @property
    def offload(self) -> bool:
        return self.strategy.endswith("_offload")

    def _parameters(self, nbytes: int) -> int:
        if self.stage < 3:
            return nbytes
        return 0 if self.offload else -(-nbytes // self.world)

    def frozen(self, nbytes: int) -> int:
        """The frozen base's bytes on one GPU."""
        return self._parameters(nbytes)

    def trainable(self, nbytes: int) -> int:
        """The trainable parameters' bytes on one GPU."""
        return self._parameters(nbytes)

    def gradients(self, nbytes: int) -> int:
        """The gradients' bytes on one GPU (nbytes: the trainable parameters' bytes)."""
        return nbytes if self.stage == 1 else -(-nbytes // self.world)

    def optimizer(self, values: int) -> int:
        """Optimizer states and master copies on one GPU (values: how many values train)."""
        return 0 if self.offload else -(-values * OPTIMIZER_BYTES_PER_VALUE // self.world)

    def workspace(self, grad_itemsizes: tuple[int, ...], block_bytes: int) -> int:
        """Gradient buckets (and at stage 3 the gathered parameters of two blocks)."""
        if self.stage < 3:
            return sum(2 * BUCKET_SIZE * size for size in grad_itemsizes)
        return max(grad_itemsizes, default=0) * BUCKET_SIZE + 2 * block_bytes
