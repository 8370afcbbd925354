"""The embedded-default demo (`bash scripts/demo.sh`): a tiny random RWKV6, end to end.

It initialises the `tiny` preset with RWKV-LM's scheme, saves it as an RWKV-LM .pth,
loads it back strictly, runs a prompt through it with the chunked WKV6 backend, checks
the result against the step-by-step reference, then puts Bone adapters on it, saves
them, merges them into a plain .pth and checks the merged model against the adapter
model. Training arrives with the trainer; until then the adapters get random values.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import RWKV6Config
from .init_model import init_rwkv6
from .merge import merge_into_base
from .model import load_rwkv6, parameter_shapes, save_rwkv6
from .peft import PeftConfig, apply_peft, count_parameters, read_adapter, save_adapter
from .tokenizer import WorldTokenizer

PROMPT = "The Eiffel tower is in the city of"


def run(out_dir: Path, seed: int = 0) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    config = RWKV6Config.preset("tiny")
    n_params = sum(math.prod(s) for s in parameter_shapes(config).values())
    print(f"[1/6] tiny RWKV6: {config.n_layer} layers x {config.n_embd} channels, {config.n_head} heads of "
          f"{config.head_size}, ffn {config.dim_ffn}, vocab {config.vocab_size}: {n_params / 1e6:.2f}M parameters")

    path = out_dir / "rwkv6-tiny-random.pth"
    start = time.time()
    # nonzero: RWKV-LM's scheme leaves att.output / ffn.value at zero, which would hide the
    # attention path from the check in step 4; those get small random values here.
    save_rwkv6(init_rwkv6(config, seed=seed, nonzero=True), path)
    print(f"[2/6] initialised with RWKV-LM's scheme (zero projections randomised) and saved {path} "
          f"(bf16, {path.stat().st_size / 2**20:.1f} MiB, {time.time() - start:.1f}s)")

    model = load_rwkv6(path, dtype=torch.float32)
    tok = WorldTokenizer()
    ids = tok.encode(PROMPT)
    idx = torch.tensor([ids])
    start = time.time()
    with torch.no_grad():
        logits = model(idx)
    took = time.time() - start
    print(f"[3/6] loaded it back (strict), ran {len(ids)} tokens of {PROMPT!r} {ids} "
          f"-> logits {tuple(logits.shape)} in {took * 1000:.0f} ms (wkv6 backend: chunked)")

    loss = F.cross_entropy(logits[0, :-1], idx[0, 1:]).item()
    next_ids = logits[0, -1].topk(3).indices.tolist()
    print(f"      next-token loss {loss:.3f} (a random model should be near ln(65536) = {math.log(65536):.3f}); "
          f"its top guesses after the prompt: {[tok.decode([i]) for i in next_ids]}")

    with torch.no_grad():
        reference = model.set_runtime(wkv_backend="naive")(idx)
    diff = ((logits - reference).abs().max() / reference.abs().max()).item()
    print(f"[4/6] chunked vs step-by-step WKV6 on the whole model: max relative logit difference {diff:.1e}")

    model.set_runtime(wkv_backend="chunked")
    config_peft = PeftConfig(method="bone", r=16)
    apply_peft(model, config_peft, verbose=False)
    trainable, total = count_parameters(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:                    # stand-in for training: small random blocks
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
        adapted = model(idx)
    adapter_dir = save_adapter(model, config_peft, out_dir / "bone-adapter", step=0)
    print(f"[5/6] Bone r=16 on all 8 linears of each block: {trainable:,} of {total:,} parameters train; "
          f"saved {adapter_dir} ({(adapter_dir / 'adapter.pth').stat().st_size / 2**10:.0f} KiB)")

    merged_path = out_dir / "rwkv6-tiny-bone-merged.pth"
    merge_into_base(path, read_adapter(adapter_dir), merged_path, overwrite=True)
    with torch.no_grad():
        merged = load_rwkv6(merged_path)(idx)
    merge_diff = ((merged - adapted).abs().max() / adapted.abs().max()).item()
    print(f"[6/6] merged into {merged_path} (bf16, RWKV-LM keys): merged vs adapter model, "
          f"max relative logit difference {merge_diff:.1e} (bf16 rounding of W + dW)")
    return {"checkpoint": path, "loss": loss, "max_rel_diff": diff, "tokens": ids,
            "merged": merged_path, "merge_rel_diff": merge_diff}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m src.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out_dir", default="out/demo", help="where the demo writes its files (default out/demo)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    result = run(Path(args.out_dir), seed=args.seed)
    if not result["max_rel_diff"] < 1e-4:
        print("demo FAILED: the chunked and step-by-step WKV6 disagree", file=sys.stderr)
        return 1
    if not result["merge_rel_diff"] < 3e-2:
        print("demo FAILED: the merged model does not match the adapter model", file=sys.stderr)
        return 1
    print("demo OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
