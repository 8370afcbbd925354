"""The trainer behind train.py: RWKV6 + adapters as a LightningModule, under DeepSpeed.

    python train.py --load_model rwkv6-3b.pth --data_file data/mydata --peft bone --peft_r 64 ...

Loss: cross-entropy on the masked targets (all of them for binidx data), plus RWKV-LM's
L2Wrap. Optimizer: AdamW (DeepSpeedCPUAdam when DeepSpeed offloads it), weight decay on
the adapter matrices only. Schedule: linear warmup to lr_init, then cosine or exponential
decay to lr_final (or constant).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.exceptions import SIGTERMException

from .atomic import atomic_write_text
from .callbacks import Checkpointing, ProgressBar, StopRequest, TrainingLog, rng_state, set_rng_state
from .config import RWKV6Config
from .data import BinIdx, TokenDataset
from .deepspeed_strategy import make_strategy
from .init_model import init_rwkv6
from .model import load_rwkv6, save_rwkv6
from .peft import adapter_layers, apply_peft, load_adapter, save_adapter
from .peft.adapter_io import read_adapter
from .run_dir import TRAINER_STATE, checkpoint_step, checkpoints, find_resume_checkpoint
from .train_config import TrainConfig, parse_args, validate

OOM_ADVICE = ("CUDA ran out of memory. Try, in this order: --grad_cp 1 (recompute activations), a smaller "
              "--micro_bsz (with --accumulate_grad_batches to keep the batch), a shorter --ctx_len, "
              "--strategy deepspeed_stage_2_offload or deepspeed_stage_3_offload (optimizer / parameters in CPU RAM).")


class NonFiniteLoss(RuntimeError):
    pass


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate of optimizer step `step` (0-based)."""
    if step < cfg.warmup_steps:
        return cfg.lr_init * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr_init
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.total_steps - 1 - cfg.warmup_steps))
    if cfg.lr_schedule == "exp":
        return cfg.lr_init * (cfg.lr_final / cfg.lr_init) ** progress
    return cfg.lr_final + 0.5 * (cfg.lr_init - cfg.lr_final) * (1 + math.cos(math.pi * progress))


class L2Wrap(torch.autograd.Function):
    """RWKV-LM's L2Wrap: the loss passes through; in the backward, the largest logit of every
    position gets an extra gradient 1e-4 / (B*T) * its value, pushing logits towards 0."""

    @staticmethod
    def forward(ctx, loss, logits):
        ctx.save_for_backward(logits)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        (logits,) = ctx.saved_tensors
        factor = 1e-4 / (logits.shape[0] * logits.shape[1])
        top, ids = torch.max(logits, -1, keepdim=True)
        grad_logits = torch.zeros_like(logits).scatter_(-1, ids, top * factor * grad_output)
        return grad_output, grad_logits


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """logits (B, T, V), targets (B, T), mask (B, T) -> the mean loss over the masked-in targets."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))       # bf16 logits: the loss in fp32
    losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    mask = mask.flatten().to(losses.dtype)
    return (losses * mask).sum() / mask.sum().clamp_min(1.0)


class RWKVTrainingModule(L.LightningModule):
    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, data: BinIdx):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.data = data
        self.last_loss = float("nan")
        self.lr_used = float("nan")
        # DeepSpeed checkpoints leave out the frozen base; the adapters are checked strictly by load_adapter
        self.strict_loading = False

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)

    def training_step(self, batch, batch_idx):
        x, y, mask = batch
        logits = self.model(x)
        loss = masked_cross_entropy(logits, y, mask)
        bad = self.trainer.strategy.reduce_boolean_decision(not bool(torch.isfinite(loss)), all=False)
        if bad:
            raise NonFiniteLoss(f"the loss became {loss.item()} at step {self.trainer.global_step + 1} "
                                f"(on this or another rank)")
        self.last_loss = self.trainer.strategy.reduce(loss.detach(), reduce_op="mean").item()
        self.lr_used = self.trainer.optimizers[0].param_groups[0]["lr"]
        self.log("loss", self.last_loss, prog_bar=True, rank_zero_only=True)
        return L2Wrap.apply(loss, logits) if self.cfg.l2wrap else loss

    def configure_optimizers(self):
        cfg = self.cfg
        decay, no_decay = [], []
        adapters = {id(p) for layer in adapter_layers(self.model).values()
                    for name in layer.adapter_names for p in [getattr(layer, name)]}
        for p in self.model.parameters():
            if p.requires_grad:
                (decay if (id(p) in adapters or cfg.peft == "none") and p.dim() >= 2 else no_decay).append(p)
        groups = [g for g in ({"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
        if cfg.strategy.endswith("offload"):
            from deepspeed.ops.adam import DeepSpeedCPUAdam
            optimizer = DeepSpeedCPUAdam(groups, lr=cfg.lr_init, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps,
                                         adamw_mode=True)
        else:
            optimizer = torch.optim.AdamW(groups, lr=cfg.lr_init, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, cfg) / cfg.lr_init)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def train_dataloader(self):
        cfg, trainer = self.cfg, self.trainer
        done = trainer.global_step                              # restored when resuming
        # The loader starts at the first batch not yet trained on, but keeps the whole run's length:
        # a resumed Lightning epoch also restores its batch count (done * accumulate) and ends the
        # epoch at len(loader); a shorter loader would end it early and replay its first batches.
        dataset = TokenDataset(self.data, cfg.data_type, cfg.ctx_len, seed=cfg.seed, micro_bsz=cfg.micro_bsz,
                               rank=trainer.global_rank, world_size=trainer.world_size,
                               first_batch=done * cfg.accumulate_grad_batches,
                               num_batches=cfg.total_steps * cfg.accumulate_grad_batches)
        # its own generator: starting an iterator draws a seed, which must not come from the global RNG
        # (a resumed run starts one where the uninterrupted run did not, and dropout would differ)
        return torch.utils.data.DataLoader(dataset, batch_size=cfg.micro_bsz, shuffle=False,
                                           num_workers=cfg.num_workers, pin_memory=self.device.type == "cuda",
                                           persistent_workers=cfg.num_workers > 0,
                                           generator=torch.Generator().manual_seed(cfg.seed))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng"] = rng_state()
        checkpoint["train_config"] = self.cfg.to_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng" in checkpoint:
            set_rng_state(checkpoint["rng"])


# ------------------------------------------------------------------ building the run

def global_rank_from_env(devices_per_node: int) -> int:
    """Before Lightning starts, the launched processes know their rank only from the environment."""
    node, local = int(os.environ.get("NODE_RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    return node * devices_per_node + local


def build_model(cfg: TrainConfig, model_config: RWKV6Config, resume_from: Path | None, is_rank_zero: bool):
    """The base model (loaded, or a random init saved as proj_dir/base.pth) with its adapters."""
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
    runtime = dict(grad_cp=cfg.grad_cp, wkv_backend=cfg.wkv_backend)
    if cfg.load_model:
        model = load_rwkv6(cfg.load_model, dtype=dtype, **runtime)
    else:
        base = Path(cfg.proj_dir) / "base.pth"
        if base.exists():                                      # this run's own base (resumed, or written by rank 0)
            model = load_rwkv6(base, dtype=dtype, config=model_config.replace(**runtime))
        else:
            model = init_rwkv6(model_config.replace(**runtime), seed=cfg.seed, dtype=dtype)
            if is_rank_zero:
                save_rwkv6(model, base, dtype=dtype)
                print(f"random initial model saved as {base} (merge.py --base {base})", flush=True)
    model.train()
    peft = cfg.peft_config()
    if peft is None:
        model.requires_grad_(True)
        return model
    if resume_from is not None:
        adapter = read_adapter(resume_from)
        if adapter.config != peft:
            raise ValueError(f"--resume {resume_from}: it was trained with {adapter.config}, "
                             f"this run asks for {peft}")
        load_adapter(model, adapter)
    else:
        apply_peft(model, peft, verbose=is_rank_zero)
    return model


def adapter_file_writer(cfg: TrainConfig):
    """Writes the adapter files (or, without adapters, the full model) of a checkpoint. Called on
    every rank: the fp32 master copies are gathered from DeepSpeed's partitions; rank 0 writes."""
    def write(module: RWKVTrainingModule, directory: Path, step: int) -> None:
        from deepspeed.utils import safe_get_full_fp32_param
        model = module.model
        masters = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                full = safe_get_full_fp32_param(p)
                masters[name] = full if full is not None else p.detach().float()
        if not module.trainer.is_global_zero:
            return
        if cfg.peft == "none":
            sd = {k: masters.get(k, v) for k, v in model.state_dict().items()}
            save_rwkv6(sd, directory / "model.pth", dtype=torch.bfloat16 if cfg.precision == "bf16" else None)
            return
        held = {n: p.data for n, p in model.named_parameters() if n in masters}
        try:                                   # write the fp32 masters, not the (possibly bf16) working copies
            for name, p in model.named_parameters():
                if name in masters:
                    p.data = masters[name].to(p.device).view(held[name].shape)
            save_adapter(model, model.peft_config, directory, step=step)
        finally:
            for name, p in model.named_parameters():
                if name in held:
                    p.data = held[name]
    return write


def write_run_config(cfg: TrainConfig) -> None:
    atomic_write_text(Path(cfg.proj_dir) / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")


def run(cfg: TrainConfig, extra_callbacks: tuple[L.Callback, ...] = ()) -> dict:
    """Train as cfg says; extra_callbacks (e.g. the benchmark's probe) join the run's own."""
    start = time.time()
    model_config = validate(cfg)
    is_rank_zero = global_rank_from_env(cfg.devices) == 0
    proj_dir = Path(cfg.proj_dir)
    resume_from = find_resume_checkpoint(proj_dir, cfg.resume)
    if resume_from is None and checkpoints(proj_dir):
        raise ValueError(f"{proj_dir} already holds checkpoints of a run; pass --resume to continue it "
                         f"or choose another --proj_dir")
    proj_dir.mkdir(parents=True, exist_ok=True)
    if is_rank_zero:
        write_run_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.precision == "tf32":
        torch.set_float32_matmul_precision("high")
    accelerator = cfg.resolved_accelerator

    model = build_model(cfg, model_config, resume_from, is_rank_zero)
    data = BinIdx(cfg.data_file)
    module = RWKVTrainingModule(model, cfg, data)
    world = cfg.devices * cfg.num_nodes
    tokens_per_step = cfg.micro_bsz * cfg.ctx_len * cfg.accumulate_grad_batches * world
    resume_step = checkpoint_step(resume_from) if resume_from else 0
    stop = StopRequest()
    callbacks = [TrainingLog(proj_dir, tokens_per_step, resume_step=resume_step),
                 Checkpointing(proj_dir, cfg.save_every, cfg.total_steps, cfg.keep_trainer_states,
                               adapter_file_writer(cfg), stop)]
    if cfg.progress_bar:
        callbacks.append(ProgressBar())
    callbacks.extend(extra_callbacks)
    logger = False
    if cfg.log == "tensorboard":
        logger = L.pytorch.loggers.TensorBoardLogger(str(proj_dir), name="tensorboard")
    elif cfg.log == "wandb":
        logger = L.pytorch.loggers.WandbLogger(project=cfg.wandb_project, save_dir=str(proj_dir))
    trainer = L.Trainer(
        accelerator=accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
        strategy=make_strategy(cfg.strategy, accelerator, cfg.micro_bsz),
        precision="bf16-true" if cfg.precision == "bf16" else "32-true",
        max_steps=cfg.total_steps, max_epochs=-1, accumulate_grad_batches=cfg.accumulate_grad_batches,
        gradient_clip_val=cfg.grad_clip or None, use_distributed_sampler=False, logger=logger,
        enable_checkpointing=False, callbacks=callbacks, enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False, log_every_n_steps=1, num_sanity_val_steps=0)
    if resume_from is not None and is_rank_zero:
        print(f"resuming from {resume_from} (step {resume_step})", flush=True)
    stop.install()
    try:
        trainer.fit(module, ckpt_path=str(resume_from / TRAINER_STATE) if resume_from else None)
    except SIGTERMException:             # Lightning's own SIGTERM exit, after our checkpoint was saved
        if trainer.is_global_zero:
            callbacks[0].on_train_end(trainer, module)
    finally:
        stop.uninstall()
    return {"steps": trainer.global_step, "seconds": time.time() - start, "proj_dir": proj_dir,
            "stopped_early": stop.requested}


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
        result = run(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLoss as e:
        print(f"train.py: stopped: {e}. Nothing from that step was saved; the last good checkpoint is the newest "
              f"in --proj_dir. Try a lower --lr_init, a longer --warmup_steps or --grad_clip 1.", file=sys.stderr)
        return 3
    except torch.OutOfMemoryError:
        print(f"train.py: {OOM_ADVICE}", file=sys.stderr)
        return 4
    if global_rank_from_env(cfg.devices) == 0:
        done = "stopped early at" if result["stopped_early"] else "finished"
        print(f"{done} step {result['steps']} in {result['seconds']:.0f}s; checkpoints, metrics.csv and loss.png "
              f"in {result['proj_dir']}")
    return 0
