"""The preference and reward tuning demonstration, with its curves: a tiny model taught two answers, then moved
to one of them by DPO and by GRPO.

    bash scripts/bench_align.sh                       # CPU, a few minutes: docs/bench/align-curves.png and .csv
    bash scripts/bench_align.sh --family x060 --work_dir /tmp/align

(= python -m src.bench.align ...) Eight prompts, "Pick a number for item k:", each answered " 7" and " 9" in
the supervised data. A random tiny base is first fine-tuned on both answers (every weight), so it gives
them about equal probability. Then, each with LoRA adapters on that model:
  DPO   pairs preferring " 7" for odd items and " 9" for even ones: the model's own preference accuracy
        (how often log p(chosen) > log p(rejected)) goes from 0.5 to 1;
  GRPO  the same prompts with the answer 7 and the exact reward: the mean reward of the sampled groups goes
        from about 0.5 to 1, the KL to the reference (the model before, adapters off) rising as it moves.
The test suite runs the same steps (tests/align/test_training.py).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
import tempfile
from pathlib import Path

import torch

ITEMS = 8


def prompt(k: int) -> str:
    return f"Pick a number for item {k}:"


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def demo_data(root: Path, tokenizer, family: str = "x070") -> Path:
    """Into `root`: sft (both answers of every prompt), pairs (odd items prefer " 7", even " 9"), prompts.jsonl
    (answer 7) and base.pth (a random tiny base of `family`). Returns root."""
    from ..data.make_data import make_data
    from ..model import get_family, init_model, save_checkpoint
    root.mkdir(parents=True, exist_ok=True)
    make_data(write_jsonl(root / "sft.jsonl", [{"prompt": prompt(k), "response": r} for k in range(ITEMS)
                                               for r in (" 7", " 9")]), root / "sft", tokenizer, overwrite=True)
    make_data(write_jsonl(root / "pairs.jsonl", [
        {"prompt": prompt(k), "chosen": " 7" if k % 2 else " 9", "rejected": " 9" if k % 2 else " 7"}
        for k in range(ITEMS)]), root / "pairs", tokenizer, overwrite=True)
    write_jsonl(root / "prompts.jsonl", [{"prompt": prompt(k), "answer": "7"} for k in range(ITEMS)])
    config = get_family(family).config_class.preset("tiny")
    save_checkpoint(init_model(config, seed=3), root / "base.pth", dtype=torch.float32)
    return root


def flags(**values) -> list[str]:
    base = {"accelerator": "cpu", "strategy": "deepspeed_stage_2", "precision": "fp32", "ctx_len": 16,
            "progress_bar": 0, "seed": 1, "warmup_steps": 1, "lr_final": 3e-3}
    return [f"--{k}={v}" for k, v in {**base, **values}.items()]


def teach(root: Path, steps: int = 30) -> Path:
    """Fine-tune the base on both answers (every weight); returns the taught model's .pth."""
    from ..train import main
    code = main(flags(load_model=root / "base.pth", data_file=root / "sft", data_type="sft",
                      proj_dir=root / "sft_run", peft="none", micro_bsz=8, epoch_steps=steps, lr_init=3e-3,
                      lr_final=1e-3, warmup_steps=2, overwrite=1))
    if code:
        raise RuntimeError(f"the supervised run ended with status {code}")
    return root / "sft_run" / f"checkpoint-{steps:06d}" / "model.pth"


def dpo_flags(root: Path, model: Path, proj_dir: Path, steps: int = 24) -> list[str]:
    return flags(load_model=model, data_file=root / "pairs", objective="dpo", proj_dir=proj_dir, peft="lora",
                 peft_r=8, micro_bsz=4, epoch_steps=steps, lr_init=2e-2, dpo_beta=0.5, ref_precompute=1)


def grpo_flags(root: Path, model: Path, proj_dir: Path, steps: int = 10) -> list[str]:
    return flags(load_model=model, data_file=root / "prompts.jsonl", objective="grpo", proj_dir=proj_dir, peft="lora",
                 peft_r=8, micro_bsz=4, epoch_steps=steps, lr_init=1e-2, group_size=8, max_new_tokens=3,
                 reward="exact")


def preference_accuracy(model_path: Path, pairs: Path, adapter: Path | None = None) -> float:
    """How often the model itself gives the chosen response a higher log-probability than the rejected one."""
    from ..align.logprobs import sequence_logprobs
    from ..data import BinIdx
    from ..data.pairs import pair_sample
    from ..infer.load import load_for_inference
    model, _ = load_for_inference(str(model_path), adapter=adapter and str(adapter), device="cpu")
    data, right = BinIdx(pairs), 0
    for d in range(data.num_documents):
        x, y, mask = pair_sample(data, d, 16)
        with torch.no_grad():
            chosen, rejected = sequence_logprobs(model, x, y, mask).tolist()
        right += chosen > rejected
    return right / data.num_documents


def rows(proj_dir: Path) -> list[dict]:
    return list(csv.DictReader(open(Path(proj_dir) / "metrics.csv")))


def plot(dpo: list[dict], grpo: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..utils.atomic import atomic_save_png
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    steps = [int(r["step"]) for r in dpo]
    for column in ("loss", "rewards/margin", "rewards/accuracy"):
        left.plot(steps, [float(r[column]) for r in dpo], lw=1.5, label=column)
    left.set_title("DPO (preference pairs)")
    steps = [int(r["step"]) for r in grpo]
    right.plot(steps, [float(r["reward"]) for r in grpo], lw=1.5, label="reward (exact, group mean)")
    right.plot(steps, [float(r["kl"]) for r in grpo], lw=1.5, label="KL to the reference")
    right.plot(steps, [float(r["zero_advantage"]) for r in grpo], lw=1, ls="--", label="groups with zero advantage")
    right.set_title("GRPO (8 completions per prompt)")
    for ax in (left, right):
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_save_png(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/bench_align.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="x070", help="the tiny base's model family (default: x070, RWKV-7)")
    p.add_argument("--work_dir", default=None, metavar="DIR", help="where the runs go (default: a temporary "
                                                                  "directory)")
    p.add_argument("--out", default="docs/bench", metavar="DIR",
                   help="where align-curves.png and align-curves.csv are written (default: docs/bench)")
    args = p.parse_args(argv)
    from ..data.tokenizer import WorldTokenizer
    from ..train import main as train
    with tempfile.TemporaryDirectory() as tmp:
        root = demo_data(Path(args.work_dir or tmp), WorldTokenizer(), args.family)
        taught = teach(root)
        before = preference_accuracy(taught, root / "pairs")
        for name, make in (("dpo", dpo_flags), ("grpo", grpo_flags)):
            if train(make(root, taught, root / name) + ["--overwrite=1"]):
                raise RuntimeError(f"the {name} run failed")
        after = preference_accuracy(taught, root / "pairs", root / "dpo")
        dpo, grpo = rows(root / "dpo"), rows(root / "grpo")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    date = datetime.date.today().isoformat()
    title = (f"tiny {args.family} taught two answers, LoRA r=8, CPU, {date}: DPO preference accuracy {before:.2f} -> "
             f"{after:.2f}; GRPO mean reward {float(grpo[0]['reward']):.2f} -> {float(grpo[-1]['reward']):.2f}")
    plot(dpo, grpo, out / "align-curves.png", title)
    with open(out / "align-curves.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["objective", "step", "loss", "rewards/accuracy", "rewards/margin", "reward", "kl"])
        for r in dpo:
            writer.writerow(["dpo", r["step"], r["loss"], r["rewards/accuracy"], r["rewards/margin"], "", ""])
        for r in grpo:
            writer.writerow(["grpo", r["step"], r["loss"], "", "", r["reward"], r["kl"]])
    print(title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
