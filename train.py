"""Fine-tune RWKV6 with Bone, Bat, DiSHA, LoRA or PiSSA under Lightning + DeepSpeed.

    python train.py --load_model rwkv6-3b.pth --data_file data/mydata --peft bone --peft_r 64 \\
        --ctx_len 512 --micro_bsz 4 --epoch_steps 1000 --proj_dir out/bone

`python train.py --help` lists every flag; scripts/train_{bone,bat,lora,pissa}.sh wrap it.
"""

import sys

try:                                      # importing torch takes seconds: a Ctrl-C then is one line too
    from src.train.trainer import main
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise
    print("train.py: interrupted while starting; nothing was written", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main())
