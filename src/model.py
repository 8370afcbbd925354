"""RWKV6 ("x060", Finch) exactly as RWKV-LM trains it and RWKV-6 World checkpoints store it.

Parameter names and shapes are RWKV-LM's, so `model.state_dict()` is a checkpoint every
RWKV runtime reads. Shapes below: B batch, T time, C n_embd, A dim_att, F dim_ffn,
H heads, N head size (A = H * N), V vocabulary, Dm / Dd the mixing / decay LoRA widths.

    x = emb(idx)                                   # (B, T, C)
    for each block: x = ln0(x) (block 0 only)
                    x = x + TimeMix(ln1(x))
                    x = x + ChannelMix(ln2(x))
    logits = head(ln_out(x))                       # (B, T, V)
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from .atomic import atomic_torch_save
from .config import RWKV6Config
from .wkv6 import wkv6

LN_X_EPS = 64e-5        # RWKV-LM: 1e-5 * head_size_divisor ** 2, head_size_divisor = 8


def time_shift(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> the previous token's features, zeros at t = 0."""
    return F.pad(x, (0, 0, 1, -1))


class TimeMix(nn.Module):
    """RWKV_Tmix_x060: data-dependent token shift, data-dependent decay, WKV6, GroupNorm, gate."""

    def __init__(self, config: RWKV6Config, layer_id: int):
        super().__init__()
        self.config = config
        self.layer_id = layer_id
        C, A, H, N = config.n_embd, config.dim_att, config.n_head, config.head_size
        Dm, Dd = config.d_mix_lora, config.d_decay_lora
        # Registered in RWKV-LM's order, so saved checkpoints list keys the same way.
        self.time_maa_x = nn.Parameter(torch.empty(1, 1, C))
        self.time_maa_w = nn.Parameter(torch.empty(1, 1, C))
        self.time_maa_k = nn.Parameter(torch.empty(1, 1, C))
        self.time_maa_v = nn.Parameter(torch.empty(1, 1, C))
        self.time_maa_r = nn.Parameter(torch.empty(1, 1, C))
        self.time_maa_g = nn.Parameter(torch.empty(1, 1, C))
        self.time_maa_w1 = nn.Parameter(torch.empty(C, 5 * Dm))
        self.time_maa_w2 = nn.Parameter(torch.empty(5, Dm, C))
        self.time_decay = nn.Parameter(torch.empty(1, 1, A))
        self.time_decay_w1 = nn.Parameter(torch.empty(C, Dd))
        self.time_decay_w2 = nn.Parameter(torch.empty(Dd, A))
        self.time_faaaa = nn.Parameter(torch.empty(H, N))
        self.receptance = nn.Linear(C, A, bias=False)
        self.key = nn.Linear(C, A, bias=False)
        self.value = nn.Linear(C, A, bias=False)
        self.output = nn.Linear(A, C, bias=False)
        self.gate = nn.Linear(C, A, bias=False)
        self.ln_x = nn.GroupNorm(H, A, eps=LN_X_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        xx = time_shift(x) - x
        xxx = x + xx * self.time_maa_x
        xxx = torch.tanh(xxx @ self.time_maa_w1).view(B * T, 5, -1).transpose(0, 1)   # (5, B*T, Dm)
        mw, mk, mv, mr, mg = torch.bmm(xxx, self.time_maa_w2).view(5, B, T, C).unbind(0)
        xw = x + xx * (self.time_maa_w + mw)
        xk = x + xx * (self.time_maa_k + mk)
        xv = x + xx * (self.time_maa_v + mv)
        xr = x + xx * (self.time_maa_r + mr)
        xg = x + xx * (self.time_maa_g + mg)

        r = self.receptance(xr)
        k = self.key(xk)
        v = self.value(xv)
        g = F.silu(self.gate(xg))
        w = self.time_decay + torch.tanh(xw @ self.time_decay_w1) @ self.time_decay_w2   # raw decay

        y, _ = wkv6(r, k, v, w, self.time_faaaa, backend=self.config.wkv_backend,
                    chunk_size=self.config.wkv_chunk_size)
        y = self.ln_x(y.reshape(B * T, -1)).view(B, T, -1)
        return self.output(y * g)


class ChannelMix(nn.Module):
    """RWKV_CMix_x060: token shift, squared-ReLU MLP gated by a sigmoid receptance."""

    def __init__(self, config: RWKV6Config, layer_id: int):
        super().__init__()
        self.layer_id = layer_id
        C, F_ = config.n_embd, config.dim_ffn
        self.time_maa_k = nn.Parameter(torch.empty(1, 1, C))
        self.time_maa_r = nn.Parameter(torch.empty(1, 1, C))
        self.key = nn.Linear(C, F_, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(F_, C, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xx = time_shift(x) - x
        xk = x + xx * self.time_maa_k
        xr = x + xx * self.time_maa_r
        k = torch.relu(self.key(xk)) ** 2
        return torch.sigmoid(self.receptance(xr)) * self.value(k)


class Block(nn.Module):
    def __init__(self, config: RWKV6Config, layer_id: int):
        super().__init__()
        self.layer_id = layer_id
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(config.n_embd)
        self.att = TimeMix(config, layer_id)
        self.ffn = ChannelMix(config, layer_id)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_id == 0:
            x = self.ln0(x)
        x = x + self.att(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class RWKV6(nn.Module):
    """model(idx: LongTensor (B, T)) -> logits (B, T, V). Parameters are left uninitialised:
    load a checkpoint (`load_rwkv6`) or initialise (`src.init_model.init_rwkv6`)."""

    def __init__(self, config: RWKV6Config):
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_out = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype not in (torch.int64, torch.int32):
            got = f"{tuple(idx.shape)} {idx.dtype}" if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(f"RWKV6: idx must be an integer tensor of shape (B, T), got {got}")
        if idx.device.type == "cpu" and idx.numel() and (idx.min() < 0 or idx.max() >= self.config.vocab_size):
            raise ValueError(f"RWKV6: token ids must lie in [0, {self.config.vocab_size}), "
                             f"got min {int(idx.min())} max {int(idx.max())}")
        x = self.emb(idx)
        checkpointing = self.config.grad_cp and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            if checkpointing:
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.head(self.ln_out(x))

    def set_runtime(self, **changes) -> "RWKV6":
        """Change runtime options (grad_cp, wkv_backend, wkv_chunk_size) of this model only."""
        shape = self.config.shape_signature()
        config = self.config.replace(**changes)
        if config.shape_signature() != shape:
            raise ValueError("RWKV6.set_runtime changes runtime options only, not shapes")
        self.config = config
        for block in self.blocks:
            block.att.config = config
        return self


# ---------------------------------------------------------------------------- checkpoints

def parameter_shapes(config: RWKV6Config) -> dict[str, torch.Size]:
    """Every key of the checkpoint and its shape, in RWKV-LM's order (built on the meta device: no memory)."""
    with torch.device("meta"):
        return {k: v.shape for k, v in RWKV6(config).state_dict().items()}


def _describe(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def check_state_dict(expected: Mapping[str, torch.Size], found: Mapping[str, object], source: str) -> None:
    """Strict comparison of key sets and shapes; raises ValueError naming the first problems."""
    problems = []
    for key, shape in expected.items():
        if key not in found:
            problems.append(f"missing key {key} (expected shape {_describe(shape)})")
        elif not isinstance(found[key], torch.Tensor):
            problems.append(f"key {key} holds a {type(found[key]).__name__}, not a tensor")
        elif tuple(found[key].shape) != tuple(shape):
            problems.append(f"key {key} has shape {_describe(found[key].shape)} in the file, "
                            f"the model expects {_describe(shape)}")
    for key in found:
        if key not in expected:
            what = _describe(found[key].shape) if isinstance(found[key], torch.Tensor) else type(found[key]).__name__
            problems.append(f"unexpected key {key} {what}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"{source}: " + "; ".join(problems[:3]) + more)


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """torch.load a .pth memory-mapped (a 14B file is paged in, not copied), with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        sd = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as mmap_error:   # legacy (non-zip) files cannot be memory-mapped
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"cannot read checkpoint {path}: {e.__class__.__name__}: {e} "
                             f"(mmap attempt: {mmap_error})") from None
    if not isinstance(sd, dict):
        raise ValueError(f"checkpoint {path} holds a {type(sd).__name__}, expected a dict of tensors")
    return sd


def load_rwkv6(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               config: RWKV6Config | None = None, **runtime) -> RWKV6:
    """Load an RWKV6 .pth (RWKV-LM key names). Every size is inferred from the shapes,
    unless `config` is given, in which case the file must match it exactly. Loading is
    strict: a missing, unexpected or wrongly shaped key is an error naming the key.
    `runtime` sets grad_cp / wkv_backend / wkv_chunk_size."""
    sd = read_checkpoint(path)
    if config is None:
        config = RWKV6Config.from_state_dict(sd, source=str(path), **runtime)
    elif runtime:
        config = config.replace(**runtime)
    with torch.device("meta"):
        model = RWKV6(config)
    check_state_dict(parameter_shapes(config), sd, source=str(path))
    for key in list(sd):   # one tensor at a time: peak RAM is the model plus one tensor
        sd[key] = sd[key].to(device=device, dtype=dtype)
    model.load_state_dict(sd, strict=True, assign=True)
    return model.eval()


def rwkv6_state_dict(model_or_state: RWKV6 | Mapping[str, torch.Tensor],
                     dtype: torch.dtype | None = torch.bfloat16) -> dict[str, torch.Tensor]:
    """RWKV-LM's key set: contiguous CPU tensors, cast to `dtype` (None keeps each tensor's)."""
    sd = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    out = {}
    for key, value in sd.items():
        value = value.detach()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        out[key] = value.to("cpu").contiguous()
    return out


def save_rwkv6(model_or_state: RWKV6 | Mapping[str, torch.Tensor], path: str | Path,
               dtype: torch.dtype | None = torch.bfloat16) -> Path:
    """Write an RWKV-LM-compatible .pth (bf16 by default) atomically: temp file, then rename."""
    path = Path(path)
    atomic_torch_save(rwkv6_state_dict(model_or_state, dtype), path)
    return path
