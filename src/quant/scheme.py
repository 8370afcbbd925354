"""A quantisation scheme for the frozen base: which type, which block size, which tensors, and its bytes.

    scheme = QuantScheme("nf4", blocksize=64, head=False)     # --quant nf4 --quant_blocksize 64
    scheme.check_shape("blocks.0.att.key", 2048, 2048)       # ValueError naming the layer if it cannot hold it
    scheme.weight_bytes(2048, 2048)                          # what the quantised weight occupies

The types are bitsandbytes' (QLoRA's):
    nf4, fp4   4 bits a value, packed two to a byte; one fp32 absmax per `blocksize` consecutive values of a
               row (blockwise quantisation). A row must hold whole blocks (in_features % blocksize == 0),
               so that any range of rows dequantises on its own (Bat dequantises a chunk of rows at a time).
    int8       8 bits a value; one fp32 absmax per row (LLM.int8()'s vector-wise quantisation, no outliers).
Everything else (embeddings, norms, the mixing vectors, the small low-rank matrices, the head unless
`head`) stays in the model dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

QUANT_TYPES = ("nf4", "fp4", "int8")
FOUR_BIT = ("nf4", "fp4")
BLOCKSIZES = (32, 64, 128, 256, 512, 1024)
CODE_TABLE_BYTES = 16 * 4          # a 4-bit type's 16 fp32 code values, held once per weight


@dataclass(frozen=True)
class QuantScheme:
    kind: str                      # "nf4", "fp4" or "int8"
    blocksize: int = 64            # values per absmax (4-bit types only; int8 has one absmax per row)
    head: bool = False             # quantise the head too (--quant_head)

    def __post_init__(self):
        if self.kind not in QUANT_TYPES:
            raise ValueError(f"--quant {self.kind!r} is not a quantisation type: use one of {', '.join(QUANT_TYPES)}")
        if self.blocksize not in BLOCKSIZES:
            raise ValueError(f"--quant_blocksize {self.blocksize} is not one of {', '.join(map(str, BLOCKSIZES))}")

    @property
    def four_bit(self) -> bool:
        return self.kind in FOUR_BIT

    @property
    def flag(self) -> str:
        return f"--quant {self.kind}"

    def quantizes(self, module_name: str) -> bool:
        """Whether the linear layer `module_name` of a model is held quantised: every linear layer of
        the blocks, the head only with `head`."""
        return module_name != "head" or self.head

    def shape_problem(self, out_features: int, in_features: int) -> str | None:
        """Why a weight of this shape cannot be held in this scheme, or None."""
        if self.four_bit and in_features % self.blocksize:
            return (f"its {in_features} inputs are not a whole number of blocks of {self.blocksize} "
                    f"(in % blocksize = {in_features % self.blocksize}); try --quant_blocksize "
                    f"{max([b for b in BLOCKSIZES if in_features % b == 0], default=32)} or --quant int8")
        return None

    def check_shape(self, name: str, out_features: int, in_features: int) -> None:
        problem = self.shape_problem(out_features, in_features)
        if problem:
            raise ValueError(f"{self.flag}: layer {name} ({out_features} x {in_features}) cannot be quantised: {problem}")

    def weight_bytes(self, out_features: int, in_features: int) -> int:
        """Bytes the quantised (out, in) weight occupies: the codes, the absmax values, the code table."""
        n = out_features * in_features
        if self.four_bit:
            return n // 2 + 4 * (n // self.blocksize) + CODE_TABLE_BYTES
        return n + 4 * out_features

    def bits_per_value(self) -> float:
        return 4 + 32 / self.blocksize if self.four_bit else 8.0

    def record(self, tensors: list[str] | None = None) -> dict:
        """What an adapter file records of the quantisation its base was trained under."""
        out = {"type": self.kind, "blocksize": self.blocksize if self.four_bit else None, "head": self.head}
        if tensors is not None:
            out["tensors"] = tensors
        return out

    @classmethod
    def from_record(cls, record: dict) -> "QuantScheme":
        return cls(record["type"], blocksize=record.get("blocksize") or 64, head=bool(record.get("head", False)))

    def describe(self) -> str:
        size = f", blocks of {self.blocksize}" if self.four_bit else ", one scale a row"
        return f"{self.kind}{size}{', head too' if self.head else ''}"
