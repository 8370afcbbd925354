"""Training: train.py's configuration, the run, the Lightning module, DeepSpeed, the run directory.

    config/       TrainConfig: every flag with its help, default and choices; reading flags and files;
                  derived values; validate
    trainer.py    run(cfg): preflight, the model with its adapters, Lightning + DeepSpeed; main()
    module.py     RWKVTrainingModule: loss per micro-batch, one host sync per optimizer step, the step boundary
    loss.py       masked cross-entropy with RWKV-LM's L2Wrap, fused; why a run stops
    infctx.py     a long sample's loss in chunks (--chunk_ctx): exact, with one chunk's memory
    schedule.py   warmup, then cosine / exponential / constant learning rate
    callbacks.py  StepEnd: after each optimizer step, validation, the log, the zero-gradient check, the
                  checkpoint and the stop, in that order; metrics.csv and loss.png; the progress bar
    validation.py --val_data: eval.py's loss during training
    checkpointing.py  checkpoints written whole, and only with weights whose loss is finite
    signals.py    stopping on Ctrl-C / SIGTERM at the next step boundary
    strategy.py   DeepSpeed through Lightning, on GPUs and on the CPU
    run_dir.py    the layout of --proj_dir and finding the checkpoint to resume
"""

from .config import TrainConfig, config_from_values, parse_args, validate
from .infctx import sample_loss
from .loss import L2Wrap, masked_cross_entropy, training_loss
from .module import NonFiniteLoss, RWKVTrainingModule
from .trainer import main, preflight, run
from .schedule import lr_at

__all__ = ["TrainConfig", "config_from_values", "parse_args", "validate", "preflight", "run", "main",
           "RWKVTrainingModule", "NonFiniteLoss", "L2Wrap", "masked_cross_entropy", "training_loss", "sample_loss", "lr_at"]
