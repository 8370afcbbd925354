"""Merge trained adapters into a plain RWKV .pth that every RWKV runtime loads.

    python merge.py --base rwkv6-3b.pth --bone out/ [--output merged.pth] [--check]

Also --bat, --disha, --lora, --pissa, or --adapter DIR (method read from adapter_config.json).
See `python merge.py --help` and src/peft/merge.py.
"""

import sys

try:                                      # importing torch takes seconds: a Ctrl-C then is one line too
    from src.peft.merge import main
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise
    print("merge.py: interrupted while starting; nothing was written", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main())
