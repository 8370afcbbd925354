"""Training: train.py's configuration, the run, the Lightning module, DeepSpeed, the run directory.

    config/          TrainConfig: every flag with its help, default and choices; reading flags and files;
                     derived values; validate
    trainer.py       the entry points: run(cfg) and main(argv), with its exit statuses
    preflight.py     every check before a model is loaded or a file written (check_run, preflight)
    assemble.py      a checked run put together (model, adapters, module, callbacks, strategy) and trained
    random_base.py   a run's random initial model, proj_dir/base.pth, and whether the one there is this run's
    module.py        RWKVTrainingModule: loss per micro-batch, one host sync per optimizer step, the step boundary
    callbacks.py     StepEnd: after each optimizer step, validation, the log, the zero-gradient check, the
                     checkpoint and the stop, in that order; metrics.csv and loss.png; the progress bar
    validation.py    --val_data: eval.py's loss during training
    checkpointing.py checkpoints written whole, and only with weights whose loss is finite
    signals.py       stopping on Ctrl-C / SIGTERM at the next step boundary
    loss.py          masked cross-entropy with RWKV-LM's L2Wrap, fused; why a run stops
    infctx.py        a long sample's loss in chunks (--chunk_ctx): exact, with one chunk's memory
    head_loss.py     the head and the loss over chunks of tokens (--head_chunk): the full logits never exist
    schedule.py      warmup, then cosine / exponential / constant learning rate
    strategy.py      DeepSpeed through Lightning, on GPUs and on the CPU
    run_dir.py       the layout of --proj_dir, what a fresh run may replace, the checkpoint to resume from
    resume.py        what a resumed run may change, whole trainer states, the abandoned newer checkpoints
"""

from .config import TrainConfig, config_from_values, parse_args, validate
from .head_loss import head_loss
from .infctx import sample_loss
from .loss import L2Wrap, masked_cross_entropy, training_loss
from .module import NonFiniteLoss, RWKVTrainingModule
from .trainer import main, preflight, run
from .schedule import lr_at

__all__ = ["TrainConfig", "config_from_values", "parse_args", "validate", "preflight", "run", "main",
           "RWKVTrainingModule", "NonFiniteLoss", "L2Wrap", "masked_cross_entropy", "training_loss", "sample_loss", "head_loss",
           "lr_at"]
