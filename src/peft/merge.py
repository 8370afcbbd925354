"""Merge an adapter into a plain RWKV .pth of its family (RWKV-6, RWKV-7), layer by layer: W + ΔW in fp32, written in the base's dtype.

    python merge.py --base rwkv6-3b.pth --bone out/ [--output merged.pth] [--check]
    python merge.py --base rwkv7-13.3b.pth --adapter out_nf4/ --merge_base dequantized

An adapter trained on a quantised base (--quant) is merged into the full-precision base by default, as
QLoRA users do; `--merge_base dequantized` merges into the base's weights as quantised and dequantised
instead (Ŵ + ΔW for every quantised layer, Ŵ alone for the others): exactly the function trained.

The base is memory-mapped and the output is built one tensor at a time, so merging a 14B
model needs about one model's worth of RAM. Everything is validated before anything is
written; the write is atomic; the output can never be the base file.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn as nn

from ..model import RWKVState, check_state_dict, config_from_checkpoint, load_model, read_checkpoint, save_checkpoint
from ..model import build_model
from ..model.checkpoint import DTYPE_NAMES, STORED_DTYPES
from ..quant import QuantLinear, QuantizedWeight, linears_to_quantize
from ..utils.files import check_output, file_fingerprint
from ..utils.cli import run_command
from .adapter import Adapter
from .adapter_io import base_signature_difference, load_adapter, read_any_adapter
from .apply import make_adapter
from .registry import METHODS, STATE_METHOD
from .state import STATE_FILE

@dataclass
class MergeReport:
    output: Path
    layers: int
    extra_tensors: int
    seconds: float


def check_device(device: str) -> None:
    """--device names a device this machine has."""
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r} is not a device (cpu, cuda, cuda:1, ...)") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available on this machine")
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device}: merge.py computes on cpu or cuda")


def check_output_path(base: Path, output: Path, overwrite: bool, adapter: Adapter | None = None) -> None:
    """Before any work: --output is not a directory, not the base, not a file of the adapter, and
    not an existing file unless --overwrite."""
    check_output(output, "--output", inputs=(base, *(adapter.files if adapter else ())), overwrite=overwrite)


MERGE_BASES = ("full", "dequantized")


def quantized_as_trained(weight: torch.Tensor, adapter: Adapter, module: str, device) -> QuantizedWeight:
    """The weight as the adapter's base held it while training: quantised from the dtype it trained in."""
    trained_in = DTYPE_NAMES.get((adapter.quant or {}).get("dtype") or "", torch.float32)
    return QuantizedWeight.from_float(weight.to(device=device, dtype=trained_in), adapter.quant_scheme, module)


@torch.no_grad()
def merged_weight(weight: torch.Tensor, tensors: dict[str, torch.Tensor], adapter: Adapter, module: str,
                  device: str | torch.device = "cpu", dequantized: bool = False) -> torch.Tensor:
    """W + ΔW in fp32 for one layer, by the adapter layer's own delta_weight(). `dequantized`: Ŵ + ΔW with
    Ŵ the weight quantised as in training (PiSSA: its residual quantised again, as in training)."""
    out_features, in_features = weight.shape
    if dequantized:
        base = QuantLinear(quantized_as_trained(weight, adapter, module, device))
    else:
        base = nn.Linear(in_features, out_features, bias=False, device="meta")
        base.weight = nn.Parameter(weight.to(device=device, dtype=torch.float32), requires_grad=False)
    layer = make_adapter(base, adapter.config, module, init_adapters=False)
    expected = {k: v.shape for k, v in layer.state_dict().items() if k.partition(".")[0] != "weight"}
    check_state_dict(expected, tensors, source=f"adapter {adapter.source}, layer {module} "
                                               f"(base weight {out_features} x {in_features})")
    if dequantized:
        layer.load_file_tensors(tensors)
        return layer.base_weight().float() + layer.merge_update().float()
    for name, value in tensors.items():
        getattr(layer, name).copy_(value)
    return base.weight + layer.delta_weight()


def quantized_layer_names(sd: dict, scheme) -> set[str]:
    """The modules of the base that the scheme quantises (from its family's network, on the meta device)."""
    with torch.device("meta"):
        model = build_model(config_from_checkpoint(sd))
    return set(linears_to_quantize(model, scheme))


def check_base(sd: dict, base_path: Path, adapter: Adapter) -> None:
    """The base is of the family and shapes the adapter was trained on, or a ValueError saying what differs."""
    base_config = config_from_checkpoint(sd, source=str(base_path))
    diffs = base_signature_difference(base_config.shape_signature(), adapter.base_model)
    if diffs:
        raise ValueError(f"adapter {adapter.source} was trained on another base model than {base_path}: "
                         + "; ".join(diffs))


def check_mergeable(sd: dict, base_path: Path, adapter: Adapter, merge_base: str = "full") -> None:
    """Everything merging `adapter` into the base's state dict `sd` needs, checked before any work."""
    if merge_base not in MERGE_BASES:
        raise ValueError(f"--merge_base {merge_base!r} is not one of {', '.join(MERGE_BASES)}")
    if merge_base == "dequantized" and adapter.quant_scheme is None:
        raise ValueError(f"--merge_base dequantized: adapter {adapter.source} was trained on a full-precision base "
                         f"(it records no --quant); merge it into the base as it is (--merge_base full)")
    check_base(sd, base_path, adapter)
    layers, extras = adapter.layer_tensors(), adapter.extra_tensors()
    if adapter.config.method == STATE_METHOD:
        raise ValueError(f"adapter {adapter.source} is state tuning: it changes no weight, so there is nothing to "
                         f"merge; give your runtime its {STATE_FILE} with the base model as it is")
    if not layers:
        raise ValueError(f"adapter {adapter.source} holds no {adapter.config.method} tensors")
    for module in layers:
        if f"{module}.weight" not in sd:
            raise ValueError(f"adapter {adapter.source}: layer {module} has no {module}.weight in {base_path}")
    for key, value in extras.items():
        if key not in sd:
            raise ValueError(f"adapter {adapter.source}: train_parts tensor {key} is not in {base_path}")
        if tuple(value.shape) != tuple(sd[key].shape):
            raise ValueError(f"adapter {adapter.source}: train_parts tensor {key} has shape {tuple(value.shape)}, "
                             f"{base_path} has {tuple(sd[key].shape)}")


def merged_tensors(sd: dict, adapter: Adapter, dtype: torch.dtype | None = None, device: str = "cpu",
                   merge_base: str = "full") -> Iterator[tuple[str, torch.Tensor]]:
    """(key, tensor) of base + adapter, one at a time in the base's order, computed when asked for (W + ΔW
    in fp32, then `dtype`, None: each base tensor's own), on the CPU. check_mergeable first."""
    layers, extras = adapter.layer_tensors(), adapter.extra_tensors()
    dequantized = merge_base == "dequantized"
    quantized = quantized_layer_names(sd, adapter.quant_scheme) if dequantized else set()
    for key, value in sd.items():
        target = dtype or value.dtype
        module = key[: -len(".weight")] if key.endswith(".weight") else None
        if module in layers:
            out = merged_weight(value, layers[module], adapter, module, device,
                                dequantized=module in quantized).to(device="cpu", dtype=target)
            if not torch.isfinite(out).all():
                raise ValueError(f"adapter {adapter.source}: merging layer {module} gives values that are not finite "
                                 f"(the adapter holds NaN or infinity); nothing was written")
        elif module in quantized:                        # not adapted: Ŵ, as the trained function had it
            out = quantized_as_trained(value, adapter, module, device).dequantize(torch.float32).to(
                device="cpu", dtype=target)
        elif key in extras:
            out = extras[key].to(target)
            if not torch.isfinite(out).all():
                raise ValueError(f"adapter {adapter.source}: train_parts tensor {key} holds values that are not "
                                 f"finite; nothing was written")
        else:
            out = value.to(target)                      # no copy when the dtype is already right
        yield key, out


def merge_into_base(base_path: str | Path, adapter: Adapter, output_path: str | Path,
                    dtype: torch.dtype | None = None, device: str = "cpu", overwrite: bool = False,
                    merge_base: str = "full") -> MergeReport:
    """Write base + adapter as a plain checkpoint of the base's family (RWKV-LM key set). `merge_base`
    "dequantized" (an adapter trained on a quantised base): into the weights as quantised in training."""
    start = time.time()
    base_path, output_path = Path(base_path), Path(output_path)
    check_output_path(base_path, output_path, overwrite, adapter)
    sd = read_checkpoint(base_path)
    check_mergeable(sd, base_path, adapter, merge_base)
    out = dict(merged_tensors(sd, adapter, dtype, device, merge_base))
    save_checkpoint(out, output_path, dtype=None)
    return MergeReport(output_path, len(adapter.layer_tensors()), len(adapter.extra_tensors()), time.time() - start)


@torch.no_grad()
def check_merge(base_path: str | Path, adapter: Adapter, merged_path: str | Path, n_tokens: int = 16,
                seed: int = 0, device: str = "cpu", quantized: bool = False) -> tuple[float, float]:
    """Run base+adapter and the merged model (both in fp32) on the same random tokens.
    Returns (largest absolute logit difference, the same relative to the largest logit). `quantized`: the
    base+adapter side holds its base quantised as in training (the function trained)."""
    scheme = adapter.quant_scheme if quantized else None
    trained_in = DTYPE_NAMES.get((adapter.quant or {}).get("dtype") or "", torch.float32)
    model = load_model(base_path, device=device, dtype=trained_in if scheme else torch.float32, quant=scheme)
    model = load_adapter(model.float(), adapter)
    vocab = model.config.vocab_size
    tokens = torch.randint(0, vocab, (1, n_tokens), generator=torch.Generator().manual_seed(seed)).to(device)
    expected = model(tokens).float()
    del model
    merged = load_model(merged_path, device=device)
    # a tuned initial state is not in the merged file: the merged model starts from the adapter's state file
    state = (RWKVState.from_file_tensors(adapter.state_tensors(), merged.config, device=device,
                                         source=f"adapter {adapter.source}") if adapter.state_tensors() else None)
    merged = merged(tokens, state=state).float()
    diff = (merged - expected).abs().max().item()
    return diff, diff / max(expected.abs().max().item(), 1e-30)


def default_output(base: Path, adapter: Adapter) -> Path:
    where = adapter.source if adapter.source.is_dir() else adapter.source.parent
    return where / f"{base.stem}-{adapter.config.method}-merged.pth"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="merge.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--base", "--base_model", dest="base", required=True, metavar="PATH",
                   help="the base .pth (RWKV-6 or RWKV-7) the adapter was trained on (read, never modified)")
    group = p.add_mutually_exclusive_group(required=True)
    for method in METHODS:
        group.add_argument(f"--{method}", metavar="PATH",
                           help=f"a {method} adapter: an adapter directory, a directory of checkpoints (the newest "
                                f"is used), or an RWKV-PEFT .pth or proj_dir (one adapter flag is required)")
    group.add_argument("--adapter", metavar="DIR",
                       help="an adapter directory of ours, whatever its method (read from adapter_config.json)")
    p.add_argument("--output", metavar="PATH",
                   help="the merged .pth (default: <adapter dir>/<base name>-<method>-merged.pth)")
    p.add_argument("--dtype", choices=["auto", *STORED_DTYPES], default="auto",
                   help="dtype of the written tensors (default: auto, the base's own)")
    p.add_argument("--device", default="cpu", help="where to compute W + ΔW: cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output; never the base "
                                                            "(default: refuse)")
    p.add_argument("--merge_base", choices=MERGE_BASES, default="full",
                   help="for an adapter trained on a quantised base (--quant): full merges it into the full-precision "
                        "base (QLoRA's usual way); dequantized into the base's weights as quantised in training, "
                        "every quantised layer written dequantised (exactly the function trained) (default: full)")
    p.add_argument("--check", action="store_true",
                   help="afterwards, run base + adapter and the merged model in fp32 on the same random tokens and "
                        "print the largest logit difference (default: off)")
    p.add_argument("--check_tokens", type=int, default=16, metavar="N",
                   help="how many random tokens --check runs (default: 16)")
    p.add_argument("--lora_alpha", type=float, metavar="X",
                   help="LoRA alpha of an RWKV-PEFT LoRA file, which does not record it (default: none; required "
                        "for such a file)")
    p.add_argument("--pissa_init", metavar="PATH",
                   help="RWKV-PEFT's init_pissa.pth, required for an RWKV-PEFT PiSSA file (default: none)")
    args = p.parse_args(argv)

    method = next((m for m in METHODS if getattr(args, m) is not None), None)
    source = getattr(args, method) if method else args.adapter
    base = Path(args.base)

    written = []

    def body() -> int:
        if not base.is_file():
            raise FileNotFoundError(f"base model {base} does not exist")
        if args.check_tokens < 1:
            raise ValueError(f"--check_tokens must be positive, got {args.check_tokens}")
        check_device(args.device)
        adapter = read_any_adapter(source, method, lora_alpha=args.lora_alpha, pissa_init=args.pissa_init)
        if adapter.origin != "RWKV-PEFT":
            given = [flag for flag, value in (("--lora_alpha", args.lora_alpha), ("--pissa_init", args.pissa_init))
                     if value is not None]
            if given:
                raise ValueError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for RWKV-PEFT files; "
                                 f"{adapter.source} records its own "
                                 f"settings: leave {'them' if len(given) > 1 else 'it'} out")
        check_base(read_checkpoint(base), base, adapter)
        if adapter.base_fingerprint and file_fingerprint(base) != adapter.base_fingerprint:
            print(f"merge.py: note: {base} is not the file {adapter.source} was trained on (the shapes agree, the "
                  f"contents differ); merging onto it as asked", file=sys.stderr)
        output = Path(args.output) if args.output else default_output(base, adapter)
        dtype = None if args.dtype == "auto" else STORED_DTYPES[args.dtype]
        if args.merge_base == "dequantized" and adapter.quant_scheme is None:
            raise ValueError(f"--merge_base dequantized: adapter {adapter.source} was trained on a full-precision "
                             f"base (it records no --quant); leave the flag out")
        report = merge_into_base(base, adapter, output, dtype=dtype, device=args.device, overwrite=args.overwrite,
                                 merge_base=args.merge_base)
        written.append(output)
        size = output.stat().st_size / 2**30
        options = ", ".join(f"{k}={v}" for k, v in adapter.config.options().items())
        step = f", step {adapter.step}" if adapter.step is not None else ""
        print(f"merged {report.layers} {adapter.config.method} layers ({options}{step}) and {report.extra_tensors} "
              f"train_parts tensors from {adapter.source} ({adapter.origin}) into {output} "
              f"({size:.2f} GiB) in {report.seconds:.1f}s")
        if adapter.state_tensors():
            where = adapter.source / STATE_FILE if adapter.source.is_dir() else adapter.source
            print(f"the adapter also tuned the initial state: it is not part of a model file; give your runtime "
                  f"{where} with {output}")
        if args.check:
            diff, rel = check_merge(base, adapter, output, n_tokens=args.check_tokens, device=args.device)
            print(f"check: {args.check_tokens} tokens, largest logit difference between base+adapter (fp32) and the "
                  f"merged model: {diff:.3e} ({rel:.2e} of the largest logit)")
            if adapter.quant_scheme is not None:
                qdiff, qrel = check_merge(base, adapter, output, n_tokens=args.check_tokens, device=args.device,
                                          quantized=True)
                print(f"check: the same with the base quantised as in training ({adapter.quant['type']}, the "
                      f"function trained): {qdiff:.3e} ({qrel:.2e} of the largest logit); this merge "
                      f"(--merge_base {args.merge_base}) matches the "
                      f"{'full-precision' if args.merge_base == 'full' else 'quantised'} one")
                diff = diff + qdiff
            if not math.isfinite(diff):
                return 1
        return 0

    code = run_command("merge.py", body, interrupted="nothing was written (the output appears whole or not at all)")
    if code == 2 and written:                            # interrupted during --check: the output is complete
        print(f"merge.py: {written[0]} was written whole before the interruption", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
