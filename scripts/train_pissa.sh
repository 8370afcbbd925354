#!/usr/bin/env bash
# Fine-tune RWKV-6 or RWKV-7 (the family comes from the .pth; --model rwkv7-<size> for a random one)
# with PiSSA (LoRA initialised from W's top-r singular vectors).
#
#   bash scripts/train_pissa.sh --model 3b --load_model rwkv6-3b.pth --data data/mydata --rank 64
#   bash scripts/make_data.sh data/sample.jsonl out/sample       # jsonl -> binidx
#   bash scripts/train_pissa.sh --model tiny --data out/sample --gpus 0 --steps 50 --lr 1e-3   # CPU, random init
#   bash scripts/merge.sh --base out/pissa/base.pth --pissa out/pissa --check                         # -> plain .pth
#
# Short flags: --model PRESET|CONFIG.json|MODEL.pth  --rank N  --data PREFIX  --proj_dir DIR  --ctx_len N
#   --micro_bsz N  --steps N  --lr LR  --gpus N (0: the CPU)  --strategy deepspeed_stage_...  --grad_cp 0|1
# Defaults, for one 24 GB GPU, are in configs/train/pissa.json; any other flag of train.py passes
# through (python train.py --help), and flags given here win over the defaults.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python "$REPO_ROOT/train.py" --config "$REPO_ROOT/configs/train/pissa.json" "$@"
