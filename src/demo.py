"""The embedded-default demo (`bash scripts/demo.sh`): jsonl -> binidx -> Bone training -> merged .pth -> GGUF.

It walks the whole user path on a CPU in a minute or two, with no download, for RWKV-6 (default)
or RWKV-7 (`--model rwkv7`):
  1. initialise the `tiny` preset with RWKV-LM's scheme and save it as an RWKV-LM .pth;
  2. load it back strictly and check the chunked WKV operator against the step-by-step reference;
  3. tokenise data/sample.jsonl into binidx (scripts/make_data.sh);
  4. train Bone adapters on it with the real trainer (Lightning + DeepSpeed ZeRO-2 on the
     CPU; the same code as scripts/train_bone.sh) and show the loss falling;
  5. merge the final adapter checkpoint into a plain .pth (merge.py);
  6. check the merged model against base + adapter, and its loss against the base's;
  7. export the merged model as GGUF for llama.cpp (export.py) and read its embedding back.
Every step prints the command a user would type for it.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import BinIdx, WorldTokenizer
from .data.make_data import make_data
from .export.cli import main as export_main
from .model import families, family_of, load_model, parameter_shapes, read_checkpoint, resolve_config, save_checkpoint
from .model.init import init_model
from .peft import load_adapter, read_any_adapter
from .peft.merge import check_merge
from .peft.merge import main as merge_main
from .train import parse_args
from .train import run as train
from .utils.paths import SAMPLE_DATA, TRAIN_PRESETS, shown

SAMPLE = SAMPLE_DATA / "sample.jsonl"
PROMPT = "The Eiffel tower is in the city of"


def eval_loss(model: torch.nn.Module, data: BinIdx, ctx_len: int, n_windows: int = 8) -> float:
    """Mean next-token loss over n_windows evenly spaced windows of the data."""
    starts = np.linspace(0, data.num_tokens - ctx_len - 1, n_windows).astype(int)
    tokens = torch.from_numpy(np.stack([data.window(s, ctx_len + 1) for s in starts]).astype(np.int64))
    with torch.no_grad():
        logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten()).item()


def read_losses(metrics_csv: Path) -> list[float]:
    with open(metrics_csv) as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def run(out_dir: Path, steps: int = 100, seed: int = 0, progress_bar: bool = True, family: str = "rwkv6") -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    config = resolve_config(f"{family}-tiny")                 # family: a preset prefix, "rwkv6" or "rwkv7"
    n_params = sum(math.prod(s) for s in parameter_shapes(config).values())
    name = family_of(config).title
    base_path = out_dir / f"{family}-tiny.pth"
    start = time.time()
    # nonzero: RWKV-LM's scheme leaves att.output / ffn.value at zero, which would hide the
    # attention path from the check in step 2; those get small random values here.
    save_checkpoint(init_model(config, seed=seed, nonzero=True), base_path, dtype=torch.float32)
    print(f"[1/7] tiny {name} ({config.n_layer} layers x {config.n_embd}, {config.n_head} heads, vocab "
          f"{config.vocab_size}, {n_params / 1e6:.1f}M parameters), RWKV-LM init, saved as {base_path} "
          f"({time.time() - start:.1f}s)\n      = python -m src.init_model --config configs/model/{family}-tiny.json "
          f"--out {base_path} --nonzero --dtype fp32")

    model = load_model(base_path)
    tok = WorldTokenizer()
    ids = tok.encode(PROMPT)
    idx = torch.tensor([ids])
    with torch.no_grad():
        logits = model(idx)
        reference = model.set_runtime(wkv_backend="naive")(idx)
    wkv_diff = ((logits - reference).abs().max() / reference.abs().max()).item()
    print(f"[2/7] loaded it back (strict); {PROMPT!r} -> {ids}; chunked vs step-by-step WKV on the whole "
          f"model: max relative logit difference {wkv_diff:.1e}")

    data_prefix = out_dir / "sample"
    stats = make_data(SAMPLE, data_prefix, tokenizer=tok)
    data = BinIdx(data_prefix)
    print(f"[3/7] tokenised {shown(SAMPLE)}: {stats['documents']} documents, {stats['tokens']:,} "
          f"tokens -> {data_prefix}.bin/.idx\n      = bash scripts/make_data.sh {shown(SAMPLE)} {data_prefix}")

    proj_dir = out_dir / "bone"
    shutil.rmtree(proj_dir, ignore_errors=True)              # the demo's own run directory, from a last demo
    flags = ["--model", str(base_path), "--data", str(data_prefix), "--proj_dir", str(proj_dir), "--gpus", "0",
             "--rank", "16", "--ctx_len", "128", "--micro_bsz", "4", "--steps", str(steps), "--lr", "3e-3",
             "--lr_schedule", "cos",
             "--warmup_steps", str(min(5, steps - 1)), "--grad_cp", "1", "--strategy", "deepspeed_stage_2",
             "--precision", "fp32", "--epoch_count", "2" if steps >= 2 else "1", "--seed", str(seed)]
    print(f"[4/7] training Bone r=16 for {steps} steps on the CPU (Lightning + DeepSpeed ZeRO-2, "
          f"gradient checkpointing)\n      = bash scripts/train_bone.sh {' '.join(flags)}", flush=True)
    cfg = parse_args(["--config", str(TRAIN_PRESETS / "bone.json"), *flags,
                      "--progress_bar", "1" if progress_bar else "0"])
    result = train(cfg)
    losses = read_losses(proj_dir / "metrics.csv")
    k = max(1, len(losses) // 5)
    means = [sum(losses[i:i + k]) / len(losses[i:i + k]) for i in range(0, len(losses), k)]
    print(f"      loss, mean of each {k} steps: " + " -> ".join(f"{m:.2f}" for m in means)
          + f"  ({result['seconds']:.0f}s; curve in {proj_dir / 'loss.png'}, numbers in {proj_dir / 'metrics.csv'})")

    merged_path = out_dir / f"{family}-tiny-bone-merged.pth"
    merge_flags = ["--base", str(base_path), "--bone", str(proj_dir), "--output", str(merged_path), "--overwrite"]
    print(f"[5/7] merging the newest checkpoint into a plain {name} .pth\n      = python merge.py "
          f"{' '.join(merge_flags)}\n      ", end="", flush=True)
    if merge_main(merge_flags) != 0:
        raise RuntimeError("merge.py failed")

    adapter = read_any_adapter(proj_dir, "bone")
    diff, merge_rel_diff = check_merge(base_path, adapter, merged_path, n_tokens=64, seed=seed)
    base_loss = eval_loss(load_model(base_path), data, 128)
    adapted_loss = eval_loss(load_adapter(load_model(base_path), adapter), data, 128)
    merged_loss = eval_loss(load_model(merged_path), data, 128)
    print(f"[6/7] merged model vs base + adapter: max relative logit difference {merge_rel_diff:.1e}; loss on "
          f"the sample data: base {base_loss:.3f}, base + adapter {adapted_loss:.3f}, merged {merged_loss:.3f}")

    gguf_path = out_dir / f"{family}-tiny-bone-merged.gguf"
    export_flags = ["--model", str(merged_path), "--format", "gguf", "--out", str(gguf_path), "--overwrite"]
    print(f"[7/7] exporting the merged model for llama.cpp / Ollama\n      = python export.py "
          f"{' '.join(export_flags)}", flush=True)
    if export_main(export_flags) != 0:
        raise RuntimeError("export.py failed")
    gguf_diff = gguf_embedding_difference(gguf_path, merged_path)
    print(f"      read back with llama.cpp's gguf package: the embedding differs by {gguf_diff:.1e}; run it with "
          f"llama-cli -m {gguf_path}")
    return {"checkpoint": base_path, "wkv_rel_diff": wkv_diff, "losses": losses, "first_losses": means[0],
            "last_losses": means[-1], "merged": merged_path, "merge_rel_diff": merge_rel_diff,
            "base_loss": base_loss, "adapted_loss": adapted_loss, "merged_loss": merged_loss,
            "steps": result["steps"], "gguf": gguf_path, "gguf_diff": gguf_diff}


def gguf_embedding_difference(gguf_path: Path, merged_path: Path) -> float:
    """The largest difference between the GGUF file's embedding, read by the gguf package, and the .pth's."""
    import gguf
    tensor = next(t for t in gguf.GGUFReader(gguf_path).tensors if t.name == "token_embd.weight")
    values = torch.from_numpy(gguf.quants.dequantize(tensor.data, tensor.tensor_type).copy())
    return (values.reshape(-1) - read_checkpoint(merged_path)["emb.weight"].float().reshape(-1)).abs().max().item()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/demo.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--out_dir", default="out/demo", metavar="DIR",
                   help="where the demo writes its files; its own bone/ run there is replaced (default: out/demo)")
    p.add_argument("--steps", type=int, default=100, metavar="N",
                   help="training steps, at least 2 (default: 100, about a minute)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the random model and the training (default: 0)")
    p.add_argument("--progress_bar", type=int, default=1, choices=(0, 1), help="show the progress bar (default: 1)")
    p.add_argument("--model", choices=[f.preset_prefix for f in families()], default="rwkv6",
                   help="the generation, in its tiny preset: "
                        f"{', '.join(f'{f.preset_prefix} ({f.title})' for f in families())} (default: rwkv6)")
    args = p.parse_args(argv)
    if args.steps < 2:
        p.error("--steps must be at least 2")
    r = run(Path(args.out_dir), steps=args.steps, seed=args.seed, progress_bar=bool(args.progress_bar),
            family=args.model)
    failures = []
    if not r["wkv_rel_diff"] < 1e-4:
        failures.append(f"the chunked and step-by-step WKV operators disagree ({r['wkv_rel_diff']:.1e})")
    if not r["last_losses"] < r["first_losses"] - 0.1:
        failures.append(f"the training loss did not fall ({r['first_losses']:.3f} -> {r['last_losses']:.3f})")
    if not r["merge_rel_diff"] < 1e-4:
        failures.append(f"the merged model does not match base + adapter ({r['merge_rel_diff']:.1e})")
    if not r["gguf_diff"] == 0:
        failures.append(f"the GGUF file's embedding differs from the merged model's ({r['gguf_diff']:.1e})")
    if not r["merged_loss"] < r["base_loss"]:
        failures.append(f"the merged model is no better than the base ({r['merged_loss']:.3f} vs {r['base_loss']:.3f})")
    for failure in failures:
        print(f"demo FAILED: {failure}", file=sys.stderr)
    if failures:
        return 1
    print(f"demo OK: loss {r['first_losses']:.2f} -> {r['last_losses']:.2f} in {r['steps']} steps; merged model "
          f"{r['merged']} matches base + adapter; {r['gguf']} for llama.cpp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
