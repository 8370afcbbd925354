"""train.py's entry points: `run(cfg)` trains as a configuration says, `main(argv)` reads the flags and
turns how a run ended into an exit status and one line saying what to do.

    python train.py --load_model rwkv6-3b.pth --data_file data/mydata --peft bone --peft_r 64 ...

A run is every check first (preflight.py: nothing is loaded or written before they pass), then
the run put together and trained (assemble.py). The exit statuses: 0 done (or stopped on
request, after a checkpoint), 2 a bad flag or file, 3 training went wrong (a non-finite loss,
nothing to learn, or the last step without a checkpoint), 4 out of GPU memory, 2 also for a second
Ctrl-C (stopped at once).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import lightning as L
import torch

from ..utils.cli import run_command
from .assemble import fit, global_rank_from_env
from .config import TrainConfig, parse_args
from .loss import NonFiniteLoss, NothingToLearn
from .preflight import check_run, preflight
from .run_dir import checkpoints, resumable
from .signals import StopNow

__all__ = ["run", "main", "preflight", "OOM_ADVICE"]

OOM_ADVICE = ("CUDA ran out of memory. Try, in this order: --grad_cp 1 (recompute activations), a smaller "
              "--micro_bsz (with --accumulate_grad_batches to keep the batch), a shorter --ctx_len, "
              "--strategy deepspeed_stage_2_offload or deepspeed_stage_3_offload (optimizer / parameters in CPU RAM).")


def run(cfg: TrainConfig, extra_callbacks: tuple[L.Callback, ...] = ()) -> dict:
    """Train as cfg says; extra_callbacks (e.g. the benchmark's probe) join the run's own. Every check
    comes before the first write. Returns the steps trained, the seconds taken, proj_dir and whether
    the run stopped early (on request)."""
    start = time.time()
    result = fit(cfg, check_run(cfg), extra_callbacks)
    return {**result, "seconds": time.time() - start}


def last_good(proj_dir: Path) -> str:
    """How to go on after a run stopped: from its newest checkpoint, or from the start."""
    found = resumable(proj_dir)
    if found:
        return (f"The newest checkpoint, {found[-1][1]}, holds weights whose loss is finite: continue with "
                f"--resume latest and")
    return "No checkpoint was saved: start again (without --resume, with --overwrite) with"


def without_checkpoint(proj_dir: Path) -> str:
    """What to do when the last step has no checkpoint."""
    found = resumable(proj_dir)
    if found:
        return f"the newest to resume from is {found[-1][1]} (--resume latest)"
    return f"there is none in {proj_dir}: start again (without --resume, with --overwrite)"


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        cfg = parse_args(argv)
        try:
            result = run(cfg)
        except NonFiniteLoss as e:
            print(f"train.py: stopped: {e}. {last_good(Path(cfg.proj_dir))} a lower --lr_init, a longer "
                  f"--warmup_steps or --grad_clip 1.", file=sys.stderr)
            return 3
        except NothingToLearn as e:
            print(f"train.py: stopped: {e}.", file=sys.stderr)
            return 3
        except torch.OutOfMemoryError:
            print(f"train.py: {OOM_ADVICE}", file=sys.stderr)
            return 4
        except StopNow as e:
            print(f"train.py: stopped at once ({e.what}); checkpoints are written whole or not at all: the "
                  f"newest in {cfg.proj_dir} is the one to --resume", file=sys.stderr)
            return 2
        if global_rank_from_env(cfg.devices) == 0:
            if not any(step == result["steps"] for step, _ in checkpoints(result["proj_dir"])):
                print(f"train.py: {'stopped' if result['stopped_early'] else 'ended'} at step {result['steps']}, but "
                      f"no checkpoint of it was written; {without_checkpoint(Path(result['proj_dir']))}",
                      file=sys.stderr)
                return 3
            done = "stopped early at" if result["stopped_early"] else "finished"
            print(f"{done} step {result['steps']} in {result['seconds']:.0f}s; checkpoints, metrics.csv and loss.png "
                  f"in {result['proj_dir']}")
        return 0

    # a second stop signal stops at once, without a checkpoint
    return run_command("train.py", body, interrupted="checkpoints are written whole or not at all: the newest is the "
                                                     "one to --resume", sigterm=False)      # StopRequest takes it
