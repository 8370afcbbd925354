#!/usr/bin/env bash
# Reward tuning with GRPO on adapters (RWKV-6 or RWKV-7): each prompt is read once, its state copied to
# --group_size samples decoded together; rewards relative to the group push the policy; the KL
# penalty's reference is the base with the adapters switched off.
#
#   bash scripts/train_grpo.sh --load_model rwkv7-g1-1.5b.pth --data prompts.jsonl --rank 64
#   bash scripts/train_grpo.sh --load_model sft.pth --data math.jsonl --reward exact format=0.2 \
#       mypkg.rewards:score=0.5 --group_size 8 --max_new_tokens 512
#
# prompts.jsonl: {"prompt": ... or "messages": [...], "answer": ...} a line. Short flags as in
# train_dpo.sh (--micro_bsz: prompts per micro-batch). Defaults (Bone r=64, 8 completions of up to 512
# tokens per prompt, the exact reward, kl_beta 0.04, lr 1e-5, ctx_len 1024, ZeRO-1, gradient
# checkpointing) are in configs/train/grpo.json; any other flag of train.py passes through
# (python train.py --help). docs/alignment.md explains it.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec python "$REPO_ROOT/train.py" --config "$REPO_ROOT/configs/train/grpo.json" "$@"
