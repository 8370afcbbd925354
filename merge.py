"""Merge trained adapters into a plain RWKV .pth that every RWKV runtime loads.

    python merge.py --base rwkv6-3b.pth --bone out/ [--output merged.pth] [--check]

Also --bat, --disha, --lora, --pissa, or --adapter DIR (method read from adapter_config.json).
See `python merge.py --help` and src/peft/merge.py.
"""

import sys

from src.peft.merge import main

if __name__ == "__main__":
    sys.exit(main())
