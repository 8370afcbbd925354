#!/usr/bin/env bash
# Preference tuning with DPO on adapters (RWKV-6 or RWKV-7): the reference model is the base itself, with
# the adapters switched off, so no second copy of the model is held.
#
#   bash scripts/make_data.sh prefs.jsonl data/prefs        # {"prompt"|"messages", "chosen", "rejected"} a line
#   bash scripts/train_dpo.sh --load_model rwkv7-g1-1.5b.pth --data data/prefs --rank 64
#   bash scripts/train_dpo.sh --load_model sft.pth --data data/prefs --ref_precompute 1 --dpo_beta 0.1
#   bash scripts/merge.sh --base rwkv7-g1-1.5b.pth --bone out/dpo --check       # -> plain .pth
#
# Short flags: --model PRESET|CONFIG.json|MODEL.pth  --rank N  --data PREFIX  --proj_dir DIR  --ctx_len N
#   --micro_bsz N (pairs)  --steps N  --lr LR  --gpus N (0: the CPU)  --strategy deepspeed_stage_...  --peft METHOD
# Defaults (Bone r=64, beta 0.1, lr 5e-6, ctx_len 1024, 2 pairs per micro-batch, ZeRO-1, gradient
# checkpointing) are in configs/train/dpo.json; any other flag of train.py passes through
# (python train.py --help), and flags given here win over the defaults. docs/alignment.md explains it.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python "$REPO_ROOT/train.py" --config "$REPO_ROOT/configs/train/dpo.json" "$@"
