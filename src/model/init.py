"""Random RWKV6 checkpoints with RWKV-LM's initialisation scheme (no download needed).

    python -m src.init_model --config configs/model/rwkv6-3b.json --out rwkv6-3b-random.pth

RWKV-LM (RWKV-v5/src/model.py, x060) initialises, with r0 = layer / (n_layer - 1) and
r1 = 1 - layer / n_layer, d[c] = c / C:
  att.time_maa_{x,w,k} = 1 - d^r1, time_maa_v = 1 - (d^r1 + 0.3 r0), time_maa_{r,g} = 1 - d^(r1/2)
  att.time_decay[n] = -6 + 5 (n / (A-1))^(0.7 + 1.3 r0)
  att.time_faaaa[n] = r0 (1 - n / (A-1)) + ((n + 1) % 3 - 1) * 0.1
  att.time_maa_w1, time_decay_w1 = 0; time_maa_w2, time_decay_w2 ~ U(-0.01, 0.01)
  ffn.time_maa_{k,r} = 1 - d^(r1^3)
  LayerNorms 1 / 0; att.ln_x.weight = ((layer + 1) / n_layer)^0.7
  emb ~ U(-1e-4, 1e-4); head orthogonal, gain 0.5 sqrt(V / C) (V > C)
  att.key, att.gate orthogonal gain 0.1; att.output, ffn.value, ffn.receptance = 0;
  every other matrix orthogonal gain 1.
Such a model has zero output projections. `nonzero=True` additionally fills every tensor
RWKV-LM sets to zero with small random values, so that every path of the network carries
signal (what a test of the model's arithmetic needs).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from ..utils.files import check_output
from ..utils.cli import run_command
from .checkpoint import parameter_shapes, save_rwkv6
from .config import RWKV6Config, preset_names, resolve_config
from .config7 import RWKV7Config
from .rwkv6 import RWKV6
from .rwkv7 import RWKV7

__all__ = ["init_rwkv6", "init_rwkv6_state_dict", "init_rwkv7", "init_rwkv7_state_dict", "init_state_dict",
           "init_model", "init_tensor", "shared_rule", "main"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

ZERO_MATRICES = (".att.output.", ".ffn.value.", ".ffn.receptance.")
SMALL_MATRICES = (".att.key.", ".att.gate.")          # orthogonal with gain 0.1
ZERO_LORA_DOWN = ("att.time_maa_w1", "att.time_decay_w1")


def _layer_ratios(layer: int, n_layer: int) -> tuple[float, float]:
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
    """The rules RWKV6 and RWKV7 share (None for any other tensor): LayerNorms 1 / 0, att.ln_x.weight
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


def init_tensor(name: str, shape: torch.Size, config: RWKV6Config, gen: torch.Generator,
                nonzero: bool = False) -> torch.Tensor:
    """The fp32 initial value of one parameter, by RWKV-LM's rules (see the module docstring)."""
    C, A, L = config.n_embd, config.dim_att, config.n_layer
    layer = int(name.split(".")[1]) if name.startswith("blocks.") else 0
    r0, r1 = _layer_ratios(layer, L)
    ddd = (torch.arange(C, dtype=torch.float64) / C).view(1, 1, C)
    n = torch.arange(A, dtype=torch.float64)

    def uniform(scale: float) -> torch.Tensor:
        return torch.empty(shape).uniform_(-scale, scale, generator=gen)

    def orthogonal(gain: float) -> torch.Tensor:
        return nn.init.orthogonal_(torch.empty(shape), gain=gain, generator=gen)

    def zero_or_random(fan_in: int) -> torch.Tensor:
        if not nonzero:
            return torch.zeros(shape)
        return torch.empty(shape).normal_(0.0, 1.0 / math.sqrt(fan_in), generator=gen)

    suffix = name.split(".", 2)[-1] if name.startswith("blocks.") else name
    if suffix in ("att.time_maa_x", "att.time_maa_w", "att.time_maa_k"):
        value = 1.0 - ddd ** r1
    elif suffix == "att.time_maa_v":
        value = 1.0 - (ddd ** r1 + 0.3 * r0)
    elif suffix in ("att.time_maa_r", "att.time_maa_g"):
        value = 1.0 - ddd ** (0.5 * r1)
    elif suffix in ("ffn.time_maa_k", "ffn.time_maa_r"):
        value = 1.0 - ddd ** (r1 ** 3)
    elif suffix == "att.time_decay":
        value = (-6.0 + 5.0 * (n / max(A - 1, 1)) ** (0.7 + 1.3 * r0)).view(1, 1, A)
    elif suffix == "att.time_faaaa":
        value = (r0 * (1.0 - n / max(A - 1, 1)) + ((n + 1) % 3 - 1) * 0.1).view(shape)
    elif suffix in ZERO_LORA_DOWN:
        value = zero_or_random(shape[0])
    elif suffix in ("att.time_maa_w2", "att.time_decay_w2"):
        value = uniform(0.01)
    elif (shared := shared_rule(name, shape, config, gen)) is not None:
        value = shared
    elif any(z in name for z in ZERO_MATRICES):
        value = zero_or_random(shape[1])
    elif any(s in name for s in SMALL_MATRICES):
        value = orthogonal(0.1)
    elif name.endswith(".weight") and len(shape) == 2:
        value = orthogonal(1.0)
    else:
        value = None
    return checked(value, name, shape)


def init_state_dict(config: RWKV6Config | RWKV7Config, seed: int = 0, dtype: torch.dtype = torch.bfloat16,
                    nonzero: bool = False, progress: bool = False) -> dict[str, torch.Tensor]:
    """A full RWKV-LM-keyed state dict of either family (its rules: init_tensor, init7.init_tensor7).
    Peak memory: the result in `dtype` plus one fp32 tensor."""
    from .init7 import init_tensor7                 # it uses shared_rule from here
    rule = init_tensor7 if isinstance(config, RWKV7Config) else init_tensor
    gen = torch.Generator().manual_seed(seed)
    shapes = parameter_shapes(config)
    out = {}
    start = time.time()
    for i, (name, shape) in enumerate(shapes.items()):
        out[name] = rule(name, shape, config, gen, nonzero=nonzero).to(dtype)
        if progress and (i + 1) % 50 == 0:
            print(f"  initialised {i + 1}/{len(shapes)} tensors ({time.time() - start:.0f}s)", file=sys.stderr)
    return out


def init_model(config: RWKV6Config | RWKV7Config, seed: int = 0, dtype: torch.dtype = torch.float32,
               device: str | torch.device = "cpu", nonzero: bool = False) -> RWKV6 | RWKV7:
    """A randomly initialised model of either family (RWKV-LM's scheme), ready to run."""
    sd = init_state_dict(config, seed=seed, dtype=dtype, nonzero=nonzero)
    with torch.device("meta"):
        model = (RWKV7 if isinstance(config, RWKV7Config) else RWKV6)(config)
    model.load_state_dict({k: v.to(device) for k, v in sd.items()}, strict=True, assign=True)
    return model


init_rwkv6_state_dict = init_rwkv7_state_dict = init_state_dict
init_rwkv6 = init_rwkv7 = init_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m src.init_model", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, metavar="PRESET|FILE",
                   help=f"a preset ({', '.join(preset_names())}; RWKV7: {', '.join(preset_names('x070'))}) or a "
                        f"model config JSON file")
    p.add_argument("--out", required=True, metavar="PATH", help="the .pth file to write (refused if it exists)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (default: 0)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="stored dtype (default: bf16)")
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
        family = "RWKV7" if isinstance(config, RWKV7Config) else "RWKV6"
        print(f"initialising {family} {config.n_layer} x {config.n_embd} ({n_params / 1e9:.3f}B parameters, "
              f"{args.dtype}, seed {args.seed}) ...", file=sys.stderr)
        start = time.time()
        sd = init_state_dict(config, seed=args.seed, dtype=DTYPES[args.dtype], nonzero=args.nonzero, progress=True)
        save_rwkv6(sd, out, dtype=None)
        print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB) in {time.time() - start:.1f}s", file=sys.stderr)

    return run_command("python -m src.init_model", body)


if __name__ == "__main__":
    sys.exit(main())
