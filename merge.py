"""Merge trained adapters into a plain RWKV .pth that every RWKV runtime loads.

    python merge.py --base rwkv6-3b.pth --bone out/ [--output merged.pth] [--check]

Also --bat, --disha, --lora, --pissa, or --adapter DIR (method read from adapter_config.json).
See `python merge.py --help` and src/peft/merge.py.
"""

if __name__ == "__main__":
    from src.entry import run
    run("src.peft.merge", "merge.py")
else:                                     # importable too: `from merge import main`
    from src.peft.merge import main
    __all__ = ["main"]
