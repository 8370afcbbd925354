"""Fine-tune RWKV6 with Bone, Bat, DiSHA, LoRA or PiSSA under Lightning + DeepSpeed.

    python train.py --load_model rwkv6-3b.pth --data_file data/mydata --peft bone --peft_r 64 \\
        --ctx_len 512 --micro_bsz 4 --epoch_steps 1000 --proj_dir out/bone

`python train.py --help` lists every flag; scripts/train_{bone,bat,lora,pissa}.sh wrap it.
"""

if __name__ == "__main__":
    from src.entry import run
    run("src.train.trainer", "train.py")
else:                                     # importable too: `from train import main`
    from src.train.trainer import main
    __all__ = ["main"]
