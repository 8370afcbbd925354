#!/usr/bin/env bash
# The memory planner: the estimated peak GPU memory of a training run, component by component, whether
# it fits, the largest ctx_len / micro_bsz that fit and the cheapest change that makes it fit
# (docs/memory.md). Estimates, from the model's shapes: nothing is loaded, no GPU is needed.
#   bash scripts/plan.sh --model rwkv7-13.3b --peft bone --rank 64 --ctx_len 4096 --quant nf4
#   bash scripts/plan.sh --model 3b --peft lora --ctx_len 512 --grad_cp 0 --json
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python -m src.plan "$@"
