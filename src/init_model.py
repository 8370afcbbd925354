"""`python -m src.init_model --config PRESET --out FILE.pth`: a random RWKV6 with RWKV-LM's
initialisation. The rules and the code are in src/model/init.py."""

import sys

from .model.init import (DTYPES, SMALL_MATRICES, ZERO_LORA_DOWN, ZERO_MATRICES, init_rwkv6, init_rwkv6_state_dict,
                         init_tensor, main)

__all__ = ["DTYPES", "SMALL_MATRICES", "ZERO_LORA_DOWN", "ZERO_MATRICES", "init_rwkv6", "init_rwkv6_state_dict",
           "init_tensor", "main"]

if __name__ == "__main__":
    sys.exit(main())
