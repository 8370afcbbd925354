"""Merge trained adapters into a plain RWKV .pth (entry point).

The adapters (Bone, Bat, DiSHA, LoRA, PiSSA) and the merge are the subject of issue 3 and
are not in this version yet. This entry point exists so the layout is the one RWKV users
expect; it refuses clearly instead of pretending to merge.
"""

import sys

if __name__ == "__main__":
    print("merge.py: merging adapters is not implemented in this version yet (issue 3).", file=sys.stderr)
    sys.exit(2)
