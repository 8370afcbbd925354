"""Random checkpoints of any registered family with RWKV-LM's initialisation (no download needed).

    python -m src.init_model --config rwkv7-1.5b --out rwkv7-1.5b-random.pth
    model = init_model(resolve_config("tiny"), seed=0, nonzero=True)

Each family's rule (Family.init_tensor: rwkv6/init.py, rwkv7/init.py) gives one tensor at a time;
the rules the families share (LayerNorms, ln_x, the embedding, the head) are here. `nonzero=True`
also fills every tensor RWKV-LM sets to zero with small random values, so that every path of the
network carries signal (what a test of the model's arithmetic needs).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from ..utils.cli import run_command
from ..utils.files import check_output
from .checkpoint import STORED_DTYPES, parameter_shapes, save_checkpoint
from .config import RWKVConfig, preset_names, resolve_config
from .family import families, family_of


def layer_ratios(layer: int, n_layer: int) -> tuple[float, float]:
    """RWKV-LM's per-layer ratios: (layer / (n_layer - 1), 1 - layer / n_layer)."""
    ratio_0_to_1 = layer / (n_layer - 1) if n_layer > 1 else 0.0
    ratio_1_to_almost0 = 1.0 - layer / n_layer
    return ratio_0_to_1, ratio_1_to_almost0


def checked(value: torch.Tensor | None, name: str, shape: torch.Size) -> torch.Tensor:
    """A rule's result as fp32, or an error if no rule applied or it made another shape."""
    if value is None:
        raise KeyError(f"no initialisation rule for {name} {tuple(shape)}")
    if tuple(value.shape) != tuple(shape):
        raise AssertionError(f"init rule for {name} produced {tuple(value.shape)}, expected {tuple(shape)}")
    return value.to(torch.float32)


def shared_rule(name: str, shape: torch.Size, config, gen: torch.Generator) -> torch.Tensor | None:
    """The rules the families share (None for any other tensor): LayerNorms 1 / 0, att.ln_x.weight
    ((layer + 1) / n_layer)^0.7, emb ~ U(+-1e-4), head orthogonal with gain 0.5 sqrt(V / C) (V > C)."""
    C, L = config.n_embd, config.n_layer
    layer = int(name.split(".")[1]) if name.startswith("blocks.") else 0
    if name.endswith("att.ln_x.weight"):
        return torch.full(shape, ((1 + layer) / L) ** 0.7)
    if ".ln" in name or name.startswith("ln_"):
        return torch.ones(shape) if name.endswith(".weight") else torch.zeros(shape)
    if name == "emb.weight":
        return torch.empty(shape).uniform_(-1e-4, 1e-4, generator=gen)
    if name == "head.weight":
        V = config.vocab_size
        return nn.init.orthogonal_(torch.empty(shape), gain=0.5 * math.sqrt(V / C) if V > C else 0.5, generator=gen)
    return None


def init_state_dict(config: RWKVConfig, seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                    nonzero: bool = False, progress: bool = False) -> dict[str, torch.Tensor]:
    """A full RWKV-LM-keyed state dict of the config's family (its rule: Family.init_tensor).
    Peak memory: the result in `dtype` plus one fp32 tensor."""
    rule = family_of(config).init_tensor
    gen = torch.Generator().manual_seed(seed)
    shapes = parameter_shapes(config)
    out = {}
    start = time.time()
    for i, (name, shape) in enumerate(shapes.items()):
        out[name] = rule(name, shape, config, gen, nonzero=nonzero).to(dtype)
        if progress and (i + 1) % 50 == 0:
            print(f"  initialised {i + 1}/{len(shapes)} tensors ({time.time() - start:.0f}s)", file=sys.stderr)
    return out


def init_model(config: RWKVConfig, seed: int = 0, dtype: torch.dtype = torch.float32,
               device: str | torch.device = "cpu", nonzero: bool = False) -> torch.nn.Module:
    """A randomly initialised model of the config's family (RWKV-LM's scheme), ready to run."""
    sd = init_state_dict(config, seed=seed, dtype=dtype, nonzero=nonzero)
    with torch.device("meta"):
        model = family_of(config).network_class(config)
    model.load_state_dict({k: v.to(device) for k, v in sd.items()}, strict=True, assign=True)
    return model



def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m src.init_model", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, metavar="PRESET|FILE",
                   help=f"a preset ({'; '.join(f.title + ': ' + ', '.join(preset_names(f.name)) for f in families())}) "
                        f"or a model config JSON file")
    p.add_argument("--out", required=True, metavar="PATH", help="the .pth file to write (refused if it exists)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (default: 0)")
    p.add_argument("--dtype", choices=sorted(STORED_DTYPES), default="bf16", help="stored dtype (default: bf16)")
    p.add_argument("--nonzero", action="store_true",
                   help="also randomise the tensors RWKV-LM initialises to zero, so that every path of the "
                        "network carries signal (for tests and demos; default: off)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (default: refuse)")
    args = p.parse_args(argv)
    out = Path(args.out)

    def body() -> None:
        if not 0 <= args.seed < 2**63:
            raise ValueError(f"--seed must be in [0, 2^63), got {args.seed}")
        config = resolve_config(args.config)
        check_output(out, "--out", inputs=(args.config,) if Path(args.config).is_file() else (),
                     overwrite=args.overwrite)
        n_params = sum(math.prod(s) for s in parameter_shapes(config).values())
        print(f"initialising {family_of(config).title} {config.n_layer} x {config.n_embd} ({n_params / 1e9:.3f}B parameters, "
              f"{args.dtype}, seed {args.seed}) ...", file=sys.stderr)
        start = time.time()
        sd = init_state_dict(config, seed=args.seed, dtype=STORED_DTYPES[args.dtype], nonzero=args.nonzero,
                             progress=True)
        save_checkpoint(sd, out, dtype=None)
        print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB) in {time.time() - start:.1f}s", file=sys.stderr)

    return run_command("python -m src.init_model", body)


if __name__ == "__main__":
    sys.exit(main())
