"""Bat (Block Affine Transformation; DiSHA paper, eq. 4-5).

W is cut into r x r blocks W_ab (output block a, input block b). Trainable `bat`,
zero-initialised, one r x r block per output block or per input block:

    index="out": bat (out/r, r, r),  ΔW_ab = W_ab D_a + D_a   (Hugging Face peft, the paper's Table 4)
    index="in":  bat (in/r, r, r),   ΔW_ab = W_ab D_b + D_b   (RWKV-PEFT)

The paper's implementation builds W + ΔW every step and keeps it for the backward in every
layer (2.08x Bone's memory, 0.54x its speed). Ours keeps no weight-sized tensor alive:

index="in" has an exact identity. With z_b = D_b x_b (one r x r product per input block),
    ΔW x = W z + tile_over_output_blocks(sum_b z_b),   so   y = W (x + z) + tile(sum_b z_b):
one product with W, like Bone, and the backward saves only x.

index="out": y_a = sum_b (W_ab D_a + D_a) x_b mixes each output block's own D_a into every
input block, which no single product with W can do. A custom autograd function builds
W_ab (I + D_a) a chunk of output rows at a time into one small buffer and uses it at once,
in the forward and again in the backward (saving only x; no (out, in) tensor is ever
held), where dL/dD_a = sum_b (W_ab^T G_ab + G_ab) with G = dL/dΔW = dy^T x, also per chunk.
On every block, W_ab D for all blocks is one batched product over `block_view`, a view of W
in its own layout.

`materialize=True` is the paper's way (W + ΔW through autograd), kept as a benchmark reference. On a
quantised base it is built a chunk of output rows at a time under checkpointing (materialized_by_rows),
since a dequantised (out, in) W must never be held; Bat(out) and Bat(in) reach W the same way as on a
plain base (through base_rows / base_forward), so no dequantised (out, in) tensor is kept either.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .bone import slice_sum
from .layer import AdapterLinear, wide

BAT_INDEXES = ("out", "in")


def block_view(weight: torch.Tensor, r: int, index: str) -> torch.Tensor:
    """W as a batch of matrices, one per block of D, whose rows are the r-wide pieces of W's rows:

        index="out": (out/r, r * in/r, r), [a, p * (in/r) + b, s] = W[a r + p, b r + s]   (a view)
        index="in":  (in/r, out, r),        [b, o, s]             = W[o, b r + s]         (a strided view)

    so that W_ab D for every block is one batched product, block_view(W) @ D, laid out as W itself
    for index="out" (no block transposes, no copies)."""
    out, in_features = weight.shape
    if index == "out":
        return weight.reshape(out // r, r * (in_features // r), r)
    return weight.reshape(out, in_features // r, r).transpose(0, 1)


def from_block_view(product: torch.Tensor, r: int, index: str) -> torch.Tensor:
    """The inverse of block_view for a (contiguous) tensor of its shape: back to (out, in)."""
    if index == "out":
        return product.reshape(product.shape[0] * r, -1)
    return product.transpose(0, 1).reshape(product.shape[1], -1)


def _add_blocks(product: torch.Tensor, bat: torch.Tensor, index: str, sign: float = 1.0) -> torch.Tensor:
    """product (block_view's shape, contiguous) + sign * D in every block, in place; returned as (out, in)."""
    n, _, r = bat.shape
    if index == "out":                                   # [a, p, b, q] += D_a[p, q]
        product.view(n, r, -1, r).add_(bat[:, :, None, :], alpha=sign)
    else:                                                # [b, a, p, q] += D_b[p, q]
        product.view(n, -1, r, r).add_(bat[:, None], alpha=sign)
    return from_block_view(product, r, index)


def bat_delta(weight: torch.Tensor, bat: torch.Tensor, index: str) -> torch.Tensor:
    """ΔW (out, in) in the dtype of the arguments: ΔW_ab = W_ab D + D with D = D_a or D_b."""
    return _add_blocks(torch.bmm(block_view(weight, bat.shape[-1], index), bat), bat, index)


def bat_grad(weight: torch.Tensor, grad_delta: torch.Tensor, r: int, index: str) -> torch.Tensor:
    """dL/dD from G = dL/dΔW (both (out, in)): sum over the other block index of W_ab^T G_ab + G_ab,
    the first sum one batched product of the block views, the second a sum over a view of G."""
    grad = torch.bmm(block_view(weight, r, index).transpose(1, 2), block_view(grad_delta, r, index))
    out, in_features = grad_delta.shape
    g = grad_delta.reshape(out // r, r, in_features // r, r)           # [a, p, b, q]
    return grad + (g.sum(2) if index == "out" else g.sum(0).transpose(0, 1))


CHUNK_ELEMENTS = 1 << 22       # the rows of W_ab (I + D_a) built at a time: about 4M values (16 MB in fp32)


def row_chunks(out_features: int, in_features: int, r: int) -> list[slice]:
    """Output rows in whole blocks of r, each chunk about CHUNK_ELEMENTS values of W."""
    rows = max(r, CHUNK_ELEMENTS // in_features // r * r)
    return [slice(start, min(start + rows, out_features)) for start in range(0, out_features, rows)]


def scaled_rows(block: torch.Tensor, bat: torch.Tensor, rows: slice, buffer: torch.Tensor) -> torch.Tensor:
    """W_ab (I + D_a) for the blocks of output `rows` (index="out"), `block` being W[rows], written into
    `buffer`'s start: one batched product over those blocks. Returns a (len(rows), in) view of the buffer."""
    r = bat.shape[-1]
    d = bat[rows.start // r:rows.stop // r]
    identity_plus = d + torch.eye(r, dtype=d.dtype, device=d.device)
    view = block_view(block, r, "out")
    target = buffer[:block.numel()].view(view.shape)
    torch.bmm(view, identity_plus, out=target)
    return target.view(block.shape)


class BatOutFunction(torch.autograd.Function):
    """y = x (W + ΔW)^T for index="out", holding no (out, in) tensor, in the forward or the backward.

    W + ΔW = W_ab (I + D_a) + D_a blockwise. The first part is built a chunk of output rows at a
    time into one small buffer (row_chunks), in the forward and again in the backward, and used
    at once; the second acts on the activations instead:
        y_a += (sum_b x_b) D_a^T          grad x_b += sum_a grad_y_a D_a
    dL/dD_a = sum_b W_ab^T G_ab + G_ab, with G = grad_y^T x built per chunk of rows too.
    W is reached through `rows_of(rows, dtype)` (AdapterLinear.base_rows): on a quantised base only
    those rows are dequantised. Saved for the backward: x and D."""

    @staticmethod
    def forward(ctx, x, bat, rows_of, out_features):
        ctx.save_for_backward(x, bat)
        ctx.rows_of, ctx.out_features = rows_of, out_features
        d = bat.to(x.dtype)
        in_features = x.shape[-1]
        r = d.shape[-1]
        x2 = x.reshape(-1, in_features)                                         # (N, in)
        y = torch.empty(x2.shape[0], out_features, dtype=x.dtype, device=x.device)
        chunks = row_chunks(out_features, in_features, r)
        buffer = torch.empty(chunks[0].stop * in_features, dtype=x.dtype, device=x.device)
        for rows in chunks:
            torch.mm(x2, scaled_rows(rows_of(rows, x.dtype), d, rows, buffer).t(), out=y[:, rows])
        tied = torch.einsum("nq,apq->nap", slice_sum(x2, r), d)                # (N, out/r, r)
        return y.add_(tied.flatten(-2)).view(*x.shape[:-1], out_features)

    @staticmethod
    def backward(ctx, grad_y):
        x, bat = ctx.saved_tensors
        rows_of, out_features = ctx.rows_of, ctx.out_features
        in_features = x.shape[-1]
        r = bat.shape[-1]
        g2, x2 = grad_y.reshape(-1, out_features), x.reshape(-1, in_features)  # (N, out), (N, in)
        d = bat.to(g2.dtype)
        need_x, need_bat = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        chunks = row_chunks(out_features, in_features, r)
        buffer = torch.empty(chunks[0].stop * in_features, dtype=g2.dtype, device=g2.device)
        grad_x = torch.zeros_like(x2) if need_x else None
        wide_dtype = torch.promote_types(torch.promote_types(bat.dtype, g2.dtype), torch.float32)
        grad_bat = torch.empty(bat.shape, dtype=wide_dtype, device=bat.device) if need_bat else None
        for rows in chunks:
            if need_x:
                grad_x.addmm_(g2[:, rows], scaled_rows(rows_of(rows, g2.dtype), d, rows, buffer))
            if need_bat:                                                        # G for these rows
                g_rows = torch.mm(g2[:, rows].t(), x2, out=buffer[:(rows.stop - rows.start) * in_features]
                                  .view(rows.stop - rows.start, in_features))
                grad_bat[rows.start // r:rows.stop // r] = bat_grad(rows_of(rows, wide_dtype), g_rows.to(wide_dtype),
                                                                    r, "out")
        if need_x:
            tied = torch.einsum("nap,apq->nq", g2.unflatten(-1, (-1, r)), d)    # (N, r)
            grad_x.unflatten(-1, (-1, r)).add_(tied.unsqueeze(-2))
            grad_x = grad_x.view(x.shape)
        return grad_x, (grad_bat.to(bat.dtype) if need_bat else None), None, None


def _materialized_rows(x: torch.Tensor, d: torch.Tensor, rows_of, rows: slice, index: str) -> torch.Tensor:
    """x (W_c + ΔW_c)^T for the output rows `rows` (whole blocks of r), W_c = W[rows]."""
    w = rows_of(rows, x.dtype)
    r = d.shape[-1]
    own = d[rows.start // r:rows.stop // r] if index == "out" else d
    return F.linear(x, w + bat_delta(w, own, index))


def materialized_by_rows(x: torch.Tensor, d: torch.Tensor, rows_of, out_features: int, index: str) -> torch.Tensor:
    """The paper's W + ΔW on a quantised W, a chunk of output rows at a time, each chunk under activation
    checkpointing: its dequantised rows and W_c + ΔW_c are built again in the backward, never kept, so
    no (out, in) tensor is held; saved: x and D."""
    chunks = row_chunks(out_features, x.shape[-1], d.shape[-1])
    return torch.cat([checkpoint(_materialized_rows, x, d, rows_of, rows, index, use_reentrant=False)
                      for rows in chunks], dim=-1)


class BatLinear(AdapterLinear):
    method = "bat"
    adapter_names = file_tensors = ("bat",)
    options = ("r", "bat_index")
    uses = ("r", "bat_index", "bat_materialize")

    def __init__(self, base: nn.Linear, r: int, index: str = "out", materialize: bool = False, name: str = ""):
        super().__init__(base, name)
        if index not in BAT_INDEXES:
            raise ValueError(f"bat: index must be one of {BAT_INDEXES}, got {index!r}")
        if not isinstance(r, int) or r <= 0:
            raise ValueError(f"bat: r must be a positive integer, got {r!r} for {self.where()}")
        if self.in_features % r or self.out_features % r:
            raise ValueError(f"bat: r={r} must divide both dimensions of {self.where()} "
                             f"(in % r = {self.in_features % r}, out % r = {self.out_features % r})")
        self.r = r
        self.index = index
        self.materialize = materialize
        n_blocks = self.out_features // r if index == "out" else self.in_features // r
        self.bat = self.adapter_parameter(n_blocks, r, r)

    @classmethod
    def from_config(cls, base, config, name="", generator=None, init_weights=True) -> "BatLinear":
        return cls(base, config.r, index=config.bat_index, materialize=config.bat_materialize, name=name)

    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.bat.to(x.dtype)
        if self.materialize:
            if self.quantized:
                return materialized_by_rows(x, d, self.base_rows, self.out_features, self.index)
            w = self.weight.to(x.dtype)
            return F.linear(x, w + bat_delta(w, d, self.index))        # autograd keeps W + ΔW for the backward
        if self.index == "out":
            return BatOutFunction.apply(x, self.bat, self.base_rows, self.out_features)
        # index="in": z_b = D_b x_b;  y = W (x + z) + tile(sum_b z_b)
        z = torch.einsum("...bj,bij->...bi", x.unflatten(-1, (-1, self.r)), d)
        y = self.base_forward(x + z.flatten(-2))
        return y + z.sum(-2).repeat(*([1] * (x.dim() - 1)), self.out_features // self.r)

    def delta_weight(self) -> torch.Tensor:
        """ΔW (out, in) fp32: ΔW_ab = W_ab D + D."""
        return bat_delta(self.base_weight(), wide(self.bat), self.index)

    def unmerged_weight(self) -> torch.Tensor:
        # W' = W (I + D) + D blockwise  =>  W = (W' - D) (I + D)^-1
        d = wide(self.bat)
        eye = torch.eye(self.r, device=d.device, dtype=d.dtype)
        view = block_view(wide(self.weight), self.r, self.index).clone(memory_format=torch.contiguous_format)
        residual = _add_blocks(view, d, self.index, -1.0)
        product = torch.bmm(block_view(residual, self.r, self.index), torch.linalg.inv(eye + d))
        return from_block_view(product, self.r, self.index)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r={self.r}, index={self.index!r}, materialize={self.materialize}"
