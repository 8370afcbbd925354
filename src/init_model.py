"""`python -m src.init_model --config PRESET --out FILE.pth`: a random model of any registered family with
RWKV-LM's initialisation. The code is in src/model/init.py."""

import sys

from .model.init import main

if __name__ == "__main__":
    sys.exit(main())
