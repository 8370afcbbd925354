"""LoRA (LoraLinear), and PiSSA (PissaLinear): LoRA with another start.

Trainable `lora_A`: (r, in), Kaiming-uniform; `lora_B`: (out, r), zeros; scale = alpha / r:

    y = W x + scale * B (A dropout(x))          ΔW = scale * B A

In training, dropout's masks come from a DropoutDraw when one is attached (the trainer does): a
function of the token's position in the sample, so a sample run in chunks drops what it drops whole.

PiSSA (Meng et al. 2024) starts A, B from the top-r singular triplets of W instead,
W ~ U_r S_r V_r^T: with S' = S_r / scale, A = sqrt(S') V_r^T, B = U_r sqrt(S'), and the
frozen weight becomes the residual W - scale * B A (so the model is unchanged at step 0).
The initial A0, B0 are kept as buffers `init_lora_A`, `init_lora_B` (they travel in the
adapter file) because ΔW relative to the original W is then scale * (B A - B0 A0):
that is what a merge into the original .pth must add.
The SVD is randomised (Halko, Martinsson and Tropp 2011), seeded by an explicit generator.
"""

from __future__ import annotations

import hashlib
import math
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layer import AdapterLinear, wide

def randomized_svd(a: torch.Tensor, rank: int, niter: int = 4, oversample: int = 10,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-`rank` singular triplets of a (m, n) fp32 matrix: U (m, rank), S (rank,), Vh (rank, n).
    `niter` power iterations sharpen the range estimate (more = closer to the exact SVD)."""
    m, n = a.shape
    q = min(rank + oversample, m, n)
    omega = torch.randn(n, q, generator=generator, dtype=a.dtype).to(a.device)
    basis, _ = torch.linalg.qr(a @ omega)
    for _ in range(niter):
        z, _ = torch.linalg.qr(a.t() @ basis)
        basis, _ = torch.linalg.qr(a @ z)
    u_small, s, vh = torch.linalg.svd(basis.t() @ a, full_matrices=False)
    return (basis @ u_small)[:, :rank], s[:rank], vh[:rank]


class DropoutDraw:
    """Which dropout masks the LoRA layers sharing it draw in training: the mask of row b, token t of the
    sample and feature j is a function of (seed, stream, step, layer, b, offset + t, j) alone, drawn by a
    counter-based hash (no generator state). A sample run in pieces (infctx) draws the masks of the whole
    sample when each piece's forward runs with `offset` = the position of its first token; a resumed run
    draws those of the uninterrupted one, since nothing depends on what was drawn before.

    The caller sets `step` (a new mask per micro-batch), `stream` (e.g. the rank) and `offset` before a
    forward; `attach` gives it to a model's LoRA and PiSSA layers."""

    def __init__(self, seed: int, stream: int = 0, step: int = 0, offset: int = 0):
        self.seed, self.stream, self.step, self.offset = seed, stream, step, offset

    @staticmethod
    def attach(model: nn.Module, draw: "DropoutDraw | None") -> int:
        """Give `draw` to every LoRA / PiSSA layer of `model` with dropout (None: back to torch's dropout);
        returns how many layers take it."""
        layers = [m for m in model.modules() if isinstance(m, LoraLinear) and m.dropout_p > 0]
        for layer in layers:
            layer.draw = draw
        return len(layers)

    def key(self, layer: int) -> int:
        """32 bits standing for (seed, stream, step, layer)."""
        text = f"{self.seed},{self.stream},{self.step},{layer}".encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "little")


MASK32 = 0xFFFFFFFF
GOLDEN32 = 0x9E3779B1


def mix32(h: torch.Tensor) -> torch.Tensor:
    """A bijection of [0, 2^32) (int64 tensors) that scatters neighbouring counters (lowbias32's shape, with
    multipliers below 2^31 so that no product leaves int64)."""
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & MASK32
    h = h ^ (h >> 15)
    h = (h * 0x5BD1E995) & MASK32
    return h ^ (h >> 16)


def positional_dropout(x: torch.Tensor, p: float, key: int, offset: int) -> torch.Tensor:
    """x (..., T, C) with each element zeroed with probability p and the rest scaled by 1 / (1 - p); whether
    element (row, t, j) is kept is a hash of (key, row, offset + t, j), so the same token of the same
    sample gets the same mask however the sample is cut into pieces."""
    *lead, T, C = x.shape
    rows = math.prod(lead)
    dev = x.device
    row = mix32((torch.arange(rows, device=dev, dtype=torch.int64) * GOLDEN32 + key) & MASK32)        # (rows,)
    position = torch.arange(offset, offset + T, device=dev, dtype=torch.int64)
    token = mix32((row[:, None] + position[None, :] * GOLDEN32) & MASK32)                             # (rows, T)
    feature = (torch.arange(C, device=dev, dtype=torch.int64) * 0x85EBCA77) & MASK32                  # (C,)
    keep = mix32(token[:, :, None] ^ feature) >= round(p * 2 ** 32)                                   # (rows, T, C)
    return x * (keep.reshape(x.shape).to(x.dtype) / (1.0 - p))


class LoraLinear(AdapterLinear):
    method = "lora"
    adapter_names = file_tensors = ("lora_A", "lora_B")
    options = ("r", "alpha")
    uses = ("r", "alpha", "dropout")

    def __init__(self, base: nn.Linear, r: int, alpha: float | None = None, dropout: float = 0.0,
                 generator: torch.Generator | None = None, init_weights: bool = True, name: str = ""):
        super().__init__(base, name)
        if not isinstance(r, int) or r <= 0:
            raise ValueError(f"{self.method}: r must be a positive integer, got {r!r} for {self.where()}")
        if r > min(self.in_features, self.out_features):
            raise ValueError(f"{self.method}: r={r} exceeds min(in, out) = "
                             f"{min(self.in_features, self.out_features)} of {self.where()}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{self.method}: dropout must be in [0, 1), got {dropout}")
        self.r = r
        self.alpha = float(alpha if alpha is not None else r)
        self.scale = self.alpha / r
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()   # without a DropoutDraw
        self.dropout_p = float(dropout)
        self.draw: DropoutDraw | None = None           # the position-keyed masks (DropoutDraw.attach)
        self.layer_key = zlib.crc32(name.encode())
        self.lora_A = self.adapter_parameter(r, self.in_features)
        self.lora_B = self.adapter_parameter(self.out_features, r)
        if init_weights and not self.weight.is_meta:      # else a loader fills A and B
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=generator)

    @classmethod
    def from_config(cls, base, config, name="", generator=None, init_weights=True) -> "LoraLinear":
        return cls(base, config.r, alpha=config.alpha, dropout=config.dropout, generator=generator,
                   init_weights=init_weights, name=name)

    @classmethod
    def option_values(cls, config) -> dict:
        return {"r": config.r, "alpha": config.alpha if config.alpha is not None else float(config.r)}

    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.lora_A.to(x.dtype), self.lora_B.to(x.dtype)
        return self.base_forward(x) + self.scale * F.linear(F.linear(self.dropped(x), a), b)   # (..., out)

    def dropped(self, x: torch.Tensor) -> torch.Tensor:
        """The adapter path's input with dropout applied (training only): masks keyed by token position
        with a DropoutDraw attached, torch's random ones without."""
        if not self.training or self.dropout_p == 0:
            return x
        if self.draw is None:
            return self.dropout(x)
        return positional_dropout(x, self.dropout_p, self.draw.key(self.layer_key), self.draw.offset)

    def merge_update(self) -> torch.Tensor:
        return self.scale * (wide(self.lora_B) @ wide(self.lora_A))

    def delta_weight(self) -> torch.Tensor:
        """ΔW = scale B A."""
        return self.scale * (wide(self.lora_B) @ wide(self.lora_A))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r={self.r}, alpha={self.alpha:g}"


class PissaLinear(LoraLinear):
    """LoRA started from the top-r singular triplets of W (see the module docstring); the held weight is
    the residual, and its adapter file also holds the start, init_lora_A / init_lora_B."""

    method = "pissa"
    file_tensors = ("lora_A", "lora_B", "init_lora_A", "init_lora_B")
    uses = ("r", "alpha", "dropout", "pissa_niter")
    zero_gradient_hint = ("PiSSA starts from the adapted weights' singular vectors, all zero where those weights are "
                          "zero (RWKV-LM's random init zeroes att.output, ffn.receptance and ffn.value, which silences "
                          "every other layer too): fine-tune a trained base (--load_model) or use another method "
                          "(--peft bone, lora)")

    def __init__(self, base: nn.Linear, r: int, alpha: float | None = None, dropout: float = 0.0, niter: int = 4,
                 generator: torch.Generator | None = None, init_weights: bool = True, name: str = ""):
        super().__init__(base, r, alpha=alpha, dropout=dropout, init_weights=False, name=name)
        self.register_buffer("init_lora_A", torch.zeros_like(self.lora_A))
        self.register_buffer("init_lora_B", torch.zeros_like(self.lora_B))
        if init_weights and not self.weight.is_meta:      # else a loader fills A, B and the start
            self.pissa_init(niter=niter, generator=generator)

    @classmethod
    def from_config(cls, base, config, name="", generator=None, init_weights=True) -> "PissaLinear":
        return cls(base, config.r, alpha=config.alpha, dropout=config.dropout, niter=config.pissa_niter,
                   generator=generator, init_weights=init_weights, name=name)

    @torch.no_grad()
    def pissa_init(self, niter: int = 4, generator: torch.Generator | None = None) -> None:
        """A, B <- the top-r singular triplets of W (scaled); W <- W - scale * B A."""
        u, s, vh = randomized_svd(self.base_weight(), self.r, niter=niter, generator=generator)
        root = torch.sqrt(s / self.scale)
        self.set_pissa_start(root[:, None] * vh, u * root[None, :])

    @torch.no_grad()
    def set_pissa_start(self, init_A: torch.Tensor, init_B: torch.Tensor) -> None:
        """Make (init_A, init_B) the PiSSA starting point: A, B and the buffers take these values,
        and the held weight becomes the original weight minus scale * init_B init_A. On a quantised base
        the original is Ŵ and the residual is quantised again (peft's PiSSA under QLoRA): call this once
        per layer there, since Ŵ is not recovered exactly from a quantised residual."""
        held = self.base_weight()
        dt = held.dtype
        original = held + self.scale * (self.init_lora_B.to(dt) @ self.init_lora_A.to(dt))
        self.init_lora_A.copy_(init_A)
        self.init_lora_B.copy_(init_B)
        self.lora_A.copy_(init_A)
        self.lora_B.copy_(init_B)
        start = self.init_lora_B.to(dt) @ self.init_lora_A.to(dt)        # as stored, so ΔW(start) is exactly 0
        if self.quantized:
            self.weight.requantize_(original - self.scale * start)
        else:
            self.weight.copy_((original - self.scale * start).to(self.weight.dtype))

    @torch.no_grad()
    def load_file_tensors(self, tensors) -> None:
        """The file holds the start (init_lora_A/B): the held weight becomes the residual first."""
        self.set_pissa_start(tensors["init_lora_A"], tensors["init_lora_B"])
        super().load_file_tensors(tensors)

    def original_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The original base layer: x (W_res + scale B0 A0)^T, the residual held plus the start."""
        a, b = self.init_lora_A.to(x.dtype), self.init_lora_B.to(x.dtype)
        return self.base_forward(x) + self.scale * F.linear(F.linear(x, a), b)

    def delta_weight(self) -> torch.Tensor:
        """ΔW relative to the original base weight, scale (B A - B0 A0) (not relative to the residual held)."""
        return self.scale * (wide(self.lora_B) @ wide(self.lora_A) - wide(self.init_lora_B) @ wide(self.init_lora_A))
