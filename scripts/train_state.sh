#!/usr/bin/env bash
# State tuning: train each layer's initial WKV state (RWKV-LM's time_state), every weight frozen. Each
# checkpoint holds state.pth, a state file RWKV runtimes load beside the unchanged base model.
#
#   bash scripts/train_state.sh --model 3b --load_model rwkv6-3b.pth --data data/mydata
#   bash scripts/make_data.sh data/sample.jsonl out/sample       # jsonl -> binidx
#   bash scripts/train_state.sh --model tiny --data out/sample --gpus 0 --steps 50   # CPU, random init
#   python -c "from src.model import RWKVState; print(RWKVState.from_file('out/state/checkpoint-000050/state.pth'))"
#
# Short flags: --model PRESET|CONFIG.json|MODEL.pth  --data PREFIX  --proj_dir DIR  --ctx_len N  --micro_bsz N
#   --steps N  --lr LR  --gpus N (0: the CPU)  --strategy deepspeed_stage_...  --grad_cp 0|1  --chunk_ctx N
#   --load_state FILE (start from a state file). --rank does not apply: a state has no rank.
# Defaults, for one 24 GB GPU, are in configs/train/state.json (RWKV-PEFT's state-tuning learning rates,
# 1 -> 0.01: a state takes far larger steps than weights); any other flag of train.py passes through
# (python train.py --help), and flags given here win over the defaults.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python "$REPO_ROOT/train.py" --config "$REPO_ROOT/configs/train/state.json" "$@"
