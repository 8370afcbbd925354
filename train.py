"""Fine-tune RWKV6 (entry point).

The trainer (Lightning + DeepSpeed, Bone/Bat/LoRA adapters, binidx data, resume) is the
subject of issue 4 and is not in this version yet. This entry point exists so the layout
is the one RWKV-LM users expect; it refuses clearly instead of pretending to train.
"""

import sys

if __name__ == "__main__":
    print("train.py: training is not implemented in this version yet (issue 4). "
          "What works now: `bash scripts/demo.sh`, `python -m src.init_model`, `src.model.load_rwkv6`.",
          file=sys.stderr)
    sys.exit(2)
