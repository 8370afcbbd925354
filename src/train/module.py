"""RWKVTrainingModule: an RWKV model with its adapters as a LightningModule.

Per micro-batch: the forward and the loss (loss.py; in chunks with --chunk_ctx, infctx.py),
nothing read back to the host. The micro-batches of one optimizer step fill a window; the step
ends when it holds accumulate_grad_batches of them, the one place the step boundary is decided
(`between_steps` tells the run's StepEnd, callbacks.py). Once per step, in one reduction over ranks
and one host sync: the window's mean loss, checked for finiteness before the optimizer steps, and
whether any rank was asked to stop.
Optimizer: AdamW (DeepSpeedCPUAdam when DeepSpeed offloads it), weight decay on the adapter
matrices only. The learning rate of step s is lr_at(s) (schedule.py), set at the step's first
micro-batch: no scheduler state, so a resumed run follows its own, possibly changed, schedule.
The module also checks and writes the weights of a checkpoint (`next_step_is_finite`,
`write_weights`).
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch

from ..data import BinIdx
from ..model import save_checkpoint
from ..peft import adapter_layers, save_adapter
from ..peft.adapter_io import FULL_MODEL_FILE
from ..peft.lora import DropoutDraw
from .config import TrainConfig
from .loss import NonFiniteLoss
from .objective import Objective, make_objective
from .schedule import lr_at
from .signals import StopRequest


class RWKVTrainingModule(L.LightningModule):
    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, data: BinIdx | None, stop: StopRequest | None = None,
                 base_fingerprint: str | None = None, objective: Objective | None = None):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.data = data
        self.objective = objective or make_objective(cfg)        # what the run optimises (objective.py)
        self.step_metrics: dict[str, float] = {}                  # the objective's metrics of the last step
        self.stop = stop
        self.base_fingerprint = base_fingerprint           # recorded in every adapter file
        self.step_loss = float("nan")          # the mean loss of the last optimizer step (all micro-batches, ranks)
        self.lr_used = float("nan")            # the learning rate of that step
        self.stop_agreed = False               # some rank was asked to stop (Ctrl-C, SIGTERM) by that step
        self.val_losses: dict[int, float] = {}  # step -> validation loss (--val_data)
        # LoRA's dropout masks: a function of (seed, rank, micro-batch, layer, token position) only
        self.dropout_draw = DropoutDraw(cfg.seed)
        if not DropoutDraw.attach(model, self.dropout_draw):
            self.dropout_draw = None
        self._window_sum: torch.Tensor | None = None
        self._window_count = 0
        # DeepSpeed checkpoints leave out the frozen base; the adapters are checked strictly by load_adapter
        self.strict_loading = False

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)

    @property
    def between_steps(self) -> bool:
        """No micro-batch of an unfinished optimizer step is in the window: before a step's first
        micro-batch, and after the last one (the step has ended)."""
        return self._window_count == 0

    @property
    def stop_here(self) -> bool:
        """Whether the step that just ended is the last: every rank agreed on a stop in its reduction, or
        (on a single rank) the stop was asked for after that reduction, during the backward or the
        optimizer step. With several ranks such a late request is agreed at the next step's reduction."""
        late = self.stop is not None and self.stop.requested and self.trainer.world_size == 1
        return self.stop_agreed or late

    def on_train_batch_start(self, batch, batch_idx) -> None:
        if self.between_steps:                                  # the first micro-batch of a step
            self.lr_used = lr_at(self.trainer.global_step, self.cfg)
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] = self.lr_used

    def on_train_start(self) -> None:
        self.objective.on_fit_start(self)

    def training_step(self, batch, batch_idx):
        if self.dropout_draw is not None:                       # this micro-batch's masks
            self.dropout_draw.stream = self.global_rank
            self.dropout_draw.step = self.trainer.global_step * self.cfg.accumulate_grad_batches + self._window_count
        loss, metrics = self.objective.loss(self, batch)
        # the loss and the objective's metrics, detached, summed over the step's micro-batches on the device
        detached = torch.stack([loss.detach().float(), *(metrics[k].detach().float().to(loss.device)
                                                         for k in self.objective.metrics)])
        self._window_sum = detached if self._window_sum is None else self._window_sum + detached
        self._window_count += 1
        if self._window_count == self.cfg.accumulate_grad_batches:
            self._close_window()                                # the step's last micro-batch, before the optimizer step
        return loss

    def _close_window(self) -> None:
        """The optimizer step's loss (mean over its micro-batches and over ranks) and the stop flag, read once."""
        means = (self._window_sum / self._window_count).float()                  # (1 + metrics,)
        stop = torch.full_like(means[:1], float(self.stop is not None and self.stop.requested))
        stats = self.trainer.strategy.reduce(torch.cat([means, stop]), reduce_op="mean")
        value, *metrics, stop_share = stats.tolist()            # the step's one host sync
        self._window_sum, self._window_count = None, 0
        self.stop_agreed = stop_share > 0
        if not math.isfinite(value):
            raise NonFiniteLoss(f"the loss became {value} at step {self.trainer.global_step + 1} "
                                f"(on this or another rank), before that step changed anything")
        self.step_loss = value
        self.step_metrics = dict(zip(self.objective.metrics, metrics))
        self.log("loss", value, prog_bar=True, rank_zero_only=True)
        for name in self.objective.shown:
            self.log(name, self.step_metrics[name], prog_bar=True, rank_zero_only=True)

    def configure_optimizers(self):
        cfg = self.cfg
        decay, no_decay = [], []
        adapters = {id(getattr(layer, name)) for layer in adapter_layers(self.model).values()
                    for name in layer.adapter_names}
        for p in self.model.parameters():
            if p.requires_grad:
                (decay if (id(p) in adapters or cfg.peft is None) and p.dim() >= 2 else no_decay).append(p)
        groups = [g for g in ({"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
        if cfg.strategy.endswith("offload"):
            from deepspeed.ops.adam import DeepSpeedCPUAdam
            optimizer = DeepSpeedCPUAdam(groups, lr=cfg.lr_init, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps,
                                         adamw_mode=True)
        else:
            optimizer = torch.optim.AdamW(groups, lr=cfg.lr_init, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps)
        return optimizer

    def dataset(self, first_step: int, steps: int):
        """This rank's samples of `steps` optimizer steps from step `first_step` (0-based) on."""
        return self.objective.dataset(self, first_step, steps)

    def train_dataloader(self):
        cfg = self.cfg
        # The loader starts at the first batch not yet trained on (global_step is restored when resuming),
        # but keeps the whole run's length: a resumed Lightning epoch also restores its batch count
        # (done * accumulate) and ends the epoch at len(loader); a shorter one would replay its first batches.
        dataset = self.dataset(self.trainer.global_step, cfg.total_steps)
        # its own generator: starting an iterator draws a seed, which must not come from the global RNG
        # (a resumed run starts one where the uninterrupted run did not, and dropout would differ)
        return torch.utils.data.DataLoader(dataset, batch_size=cfg.micro_bsz, shuffle=False,
                                           num_workers=cfg.num_workers, pin_memory=self.device.type == "cuda",
                                           persistent_workers=cfg.num_workers > 0, collate_fn=self.objective.collate,
                                           generator=torch.Generator().manual_seed(cfg.seed))

    @torch.no_grad()
    def next_step_is_finite(self) -> bool:
        """Whether the current weights give a finite loss on the next optimizer step's data (on every
        rank): what a checkpoint must hold, since that forward is the first thing a resumed run does,
        whatever its learning rate. One forward without gradients per micro-batch, dropout off."""
        cfg = self.cfg
        data = self.dataset(self.trainer.global_step, 1)
        training = self.model.training
        self.model.eval()
        try:
            finite = True
            for b in range(cfg.accumulate_grad_batches):
                batch = self.objective.collate([data[b * cfg.micro_bsz + i] for i in range(cfg.micro_bsz)])
                batch = self.transfer_batch_to_device(batch, self.device, 0)
                finite &= self.objective.finite(self, batch)
        finally:
            self.model.train(training)
        return not self.trainer.strategy.reduce_boolean_decision(not finite, all=False)

    def write_weights(self, directory: Path, step: int) -> None:
        """A checkpoint's weights: the adapter files, or with --peft none the whole model.pth. They come
        from DeepSpeed's fp32 master copies (the working copies may be bf16), gathered from its partitions
        on every rank; rank 0 writes."""
        from deepspeed.utils import safe_get_full_fp32_param
        masters = {}
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                full = safe_get_full_fp32_param(p)
                masters[name] = (full if full is not None else p.detach().float()).reshape(getattr(p, "ds_shape",
                                                                                                   p.shape))
        if not self.trainer.is_global_zero:
            return
        if self.cfg.peft is None:
            sd = {k: masters.get(k, v) for k, v in self.model.state_dict().items()}
            save_checkpoint(sd, directory / FULL_MODEL_FILE, dtype=torch.bfloat16 if self.cfg.precision == "bf16" else None)
        else:
            save_adapter(self.model, self.cfg.peft, directory, step=step, tensors=masters,
                         base_fingerprint=self.base_fingerprint)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng"] = rng_state()
        checkpoint["train_config"] = self.cfg.to_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng" in checkpoint:
            set_rng_state(checkpoint["rng"])


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
