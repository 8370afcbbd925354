"""Using a trained model: loading it for inference, sampling, generation (generate.py), evaluation (eval.py).

    load.py       a base .pth with an adapter (ours or RWKV-PEFT's) and a state file, on the GPU in bf16
                  when there is one, else on the CPU in fp32
    sampling.py   temperature, top-p and top-k sampling with an explicit generator
    generate.py   the prompt in one parallel pass, then token by token with the state; generate.py, --chat
    evaluate.py   loss and perplexity on consecutive windows of binidx data; eval.py and --val_data
"""

from .generate import TextStream, generate_tokens
from .load import load_for_inference
from .sampling import Sampler

# evaluation: `from src.infer.evaluate import evaluate` (the module keeps its name; eval.py runs it)
__all__ = ["generate_tokens", "TextStream", "load_for_inference", "Sampler"]
