"""RWKVState: everything an RWKV model of any family carries from one token to the next, and state files.

An RWKV model reads a sequence left to right with a state of constant size, so a sequence fed
in pieces, each piece starting from the state the previous one ended with, gives the logits
of feeding it whole (base.py: `model(idx, state=..., return_state=True)`). Per layer:

    att_shift   (B, C)        the time mix's input (after ln1) at the last token: its x_{t-1}
    wkv         (B, H, N, N)  the WKV state, float32, in the family's own layout, as its runtimes hold
                              it: RWKV-6 indexes it [key, value] (src/wkv6), RWKV-7 [value, key] (src/wkv7)
    ffn_shift   (B, C)        the channel mix's input (after ln2) at the last token
`family` names the model family ("x060", "x070", ...); a model takes only its own family's states.

State files are RWKV-LM's and RWKV-PEFT's (what state tuning writes, what ChatRWKV, the `rwkv`
package, RWKV Runner and ai00 read): a .pth of {"blocks.{i}.att.time_state": (H, N, N)} holding
each head's WKV state [value, key]. A family whose own state is [key, value] (RWKV-6:
Family.state_file_transposed) stores it transposed (those runtimes turn it back with
`.transpose(1, 2)`); RWKV-7's is stored as it is (RWKV-PEFT and RWKV Runner use it without a
transpose). A state file holds the WKV part only: the token shifts start at zero.

The two families' states have the same shapes, so the shapes cannot tell which family a file is
for. Ours record it in one more tensor, `rwkv_state_record` (uint8, the UTF-8 bytes of
{"family", "n_layer", "n_head", "head_size"} as JSON): runtimes look their keys up by name and
never see it. A recorded file is refused on another family or shape, naming both; a file without the
record (RWKV-PEFT's, RWKV Runner's) is checked by its shapes and read in the model's family's
layout, with a note saying so.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..utils.atomic import atomic_torch_save
from ..utils.files import load_tensor_file
from .family import get_family

STATE_KEY = "blocks.{}.att.time_state"
STATE_KEY_PATTERN = re.compile(r"blocks\.(\d+)\.att\.time_state")
STATE_RECORD_KEY = "rwkv_state_record"          # which family and shape a state file is for (ours record it)
RECORD_FIELDS = ("family", "n_layer", "n_head", "head_size")


def state_record(family: str, n_layer: int, n_head: int, head_size: int) -> torch.Tensor:
    """The record a state file of ours carries: its family and shape, JSON in a uint8 tensor."""
    get_family(family)
    text = json.dumps({"family": family, "n_layer": n_layer, "n_head": n_head, "head_size": head_size})
    return torch.tensor(list(text.encode()), dtype=torch.uint8)


def read_state_record(data: dict, source: str = "state tensors") -> dict | None:
    """A state file's record ({family, n_layer, n_head, head_size}), or None for a file without one
    (RWKV-PEFT's, RWKV Runner's). Any dtype a converter may have cast the bytes to is read back."""
    raw = data.get(STATE_RECORD_KEY)
    if raw is None:
        return None
    try:
        if not isinstance(raw, torch.Tensor) or raw.dim() != 1:
            raise ValueError
        record = json.loads(bytes(int(round(float(b))) for b in raw.tolist()).decode())
        if not isinstance(record, dict) or set(record) != set(RECORD_FIELDS) \
                or not all(isinstance(record[k], int) for k in RECORD_FIELDS[1:]):
            raise ValueError
        get_family(record["family"])
    except ValueError:                                   # also bad JSON, bytes > 255, an unknown family
        raise ValueError(f"{source}: {STATE_RECORD_KEY} is damaged (expected the JSON of "
                         f"{', '.join(RECORD_FIELDS)})") from None
    return record


def describe_state(family: str, n_layer: int, n_head: int, head_size: int) -> str:
    """ "RWKV-7 (x070), 12 layers, 12 heads of 64": how messages name what a state is for."""
    return f"{get_family(family).title} ({family}), {n_layer} layers, {n_head} heads of {head_size}"


def file_layout(wkv: torch.Tensor, family: str = "x060") -> torch.Tensor:
    """The family's WKV state -> a state file's [value, key] layout, or back (the map is its own inverse):
    transposed for a family whose state is [key, value] (RWKV-6), as it is otherwise (RWKV-7)."""
    return wkv.transpose(-1, -2) if get_family(family).state_file_transposed else wkv


def tuned_start(time_state: torch.Tensor, batch_size: int, family: str) -> torch.Tensor:
    """A tuned initial state (state tuning's `time_state`, (H, N, N) in a state file's layout) as the
    family's WKV state for a batch: (B, H, N, N), float32 (float64 stays), differentiable."""
    state = file_layout(time_state, family)
    return state.to(torch.promote_types(state.dtype, torch.float32)).expand(batch_size, *state.shape)


@dataclass
class RWKVState:
    """The state of every layer, batch first. Build one with `zeros`, `from_file`, or by running the
    model with `return_state=True`."""

    att_shift: list[torch.Tensor]      # n_layer x (B, C), the model's dtype
    wkv: list[torch.Tensor]            # n_layer x (B, H, N, N) in the family's layout, float32
    ffn_shift: list[torch.Tensor]      # n_layer x (B, C), the model's dtype
    family: str = "x060"               # the model family's name (family.py)

    def __post_init__(self) -> None:
        get_family(self.family)                                     # a ValueError naming the known ones
        if not (len(self.att_shift) == len(self.wkv) == len(self.ffn_shift)) or not self.wkv:
            raise ValueError(f"RWKVState: att_shift, wkv and ffn_shift need one tensor per layer each, got "
                             f"{len(self.att_shift)}, {len(self.wkv)} and {len(self.ffn_shift)}")
        B = self.wkv[0].shape[0]
        for i, (a, s, f) in enumerate(zip(self.att_shift, self.wkv, self.ffn_shift)):
            if a.dim() != 2 or f.dim() != 2 or s.dim() != 4 or s.shape[-1] != s.shape[-2] \
                    or a.shape[0] != B or f.shape[0] != B or s.shape[0] != B or a.shape != f.shape:
                raise ValueError(f"RWKVState: layer {i} has att_shift {tuple(a.shape)}, wkv {tuple(s.shape)}, "
                                 f"ffn_shift {tuple(f.shape)}; expected (B, C), (B, H, N, N), (B, C) with one B")

    # ------------------------------------------------------------------ building

    @classmethod
    def zeros(cls, config, batch_size: int = 1, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> "RWKVState":
        """The state before the first token: all zeros. `config`: the model's config; `dtype`: the
        token shifts' (the model's) dtype; the WKV state is float32."""
        L, C, H, N = config.n_layer, config.n_embd, config.n_head, config.head_size
        return cls([torch.zeros(batch_size, C, dtype=dtype, device=device) for _ in range(L)],
                   [torch.zeros(batch_size, H, N, N, dtype=torch.float32, device=device) for _ in range(L)],
                   [torch.zeros(batch_size, C, dtype=dtype, device=device) for _ in range(L)], config.family)

    @classmethod
    def from_wkv(cls, wkv: list[torch.Tensor], n_embd: int, dtype: torch.dtype = torch.float32,
                 family: str = "x060") -> "RWKVState":
        """A state with these WKV states ((B, H, N, N) each, in the family's layout) and zero token shifts."""
        B, device = wkv[0].shape[0], wkv[0].device
        wide = [s if s.dtype in (torch.float32, torch.float64) else s.float() for s in wkv]    # float64 stays (tests)
        return cls([torch.zeros(B, n_embd, dtype=dtype, device=device) for _ in wkv], wide,
                   [torch.zeros(B, n_embd, dtype=dtype, device=device) for _ in wkv], family)

    @classmethod
    def from_file(cls, path: str | Path, config=None, dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None, family: str | None = None) -> "RWKVState":
        """Read a state file (RWKV-LM / RWKV-PEFT state tuning: blocks.{i}.att.time_state, (H, N, N)):
        batch 1, zero token shifts. With `config` (the model's config), the layers and shapes must fit
        it and it gives the family; without, `family` does (default "x060"). A
        problem is a ValueError naming the file and the key."""
        data = load_tensor_file(Path(path), "state file")
        state = cls.from_file_tensors(data, config, dtype, device, family, source=f"state file {path}")
        note_unrecorded(data, config, f"state file {path}")
        return state

    @classmethod
    def from_file_tensors(cls, data: dict, config=None, dtype: torch.dtype = torch.float32,
                          device: torch.device | str | None = None, family: str | None = None,
                          source: str = "state tensors") -> "RWKVState":
        """As from_file, from a state file's tensors already in memory (an adapter's tuned states, say)."""
        wkv = state_file_layers(data, config, source)
        record = read_state_record(data, source)
        if config is None and record is not None and family is not None and family != record["family"]:
            raise ValueError(f"{source} is for {describe_state(**record)}, not {get_family(family).title} ({family})")
        family = config.family if config is not None else (record["family"] if record else (family or "x060"))
        n_embd = config.n_embd if config is not None else wkv[0].shape[0] * wkv[0].shape[1]
        return cls.from_wkv([file_layout(s, family)[None].to(device) for s in wkv], n_embd, dtype, family)

    # ------------------------------------------------------------------ using

    @property
    def n_layer(self) -> int:
        return len(self.wkv)

    @property
    def batch_size(self) -> int:
        return self.wkv[0].shape[0]

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.att_shift[i], self.wkv[i], self.ffn_shift[i]

    def tensors(self) -> list[torch.Tensor]:
        """Flat: att_shift, wkv, ffn_shift of layer 0, then layer 1, ... (`from_tensors` inverts it)."""
        return [t for i in range(self.n_layer) for t in self.layer(i)]

    @classmethod
    def from_tensors(cls, tensors, family: str = "x060") -> "RWKVState":
        tensors = list(tensors)
        return cls(tensors[0::3], tensors[1::3], tensors[2::3], family)

    def detach(self) -> "RWKVState":
        """The same values, cut from the autograd graph (truncated backpropagation, generation)."""
        return RWKVState.from_tensors((t.detach() for t in self.tensors()), self.family)

    def clone(self) -> "RWKVState":
        return RWKVState.from_tensors((t.clone() for t in self.tensors()), self.family)

    def to(self, device=None, dtype: torch.dtype | None = None) -> "RWKVState":
        """Move to `device`; `dtype` changes the token shifts only (the WKV state stays float32)."""
        return RWKVState([t.to(device=device, dtype=dtype) for t in self.att_shift],
                         [t.to(device=device) for t in self.wkv],
                         [t.to(device=device, dtype=dtype) for t in self.ffn_shift], self.family)

    def expand(self, batch_size: int) -> "RWKVState":
        """A batch-1 state repeated over `batch_size` rows (one prompt state for a batch)."""
        if self.batch_size != 1:
            raise ValueError(f"RWKVState.expand: the state has batch size {self.batch_size}, expected 1")
        return RWKVState.from_tensors((t.expand(batch_size, *t.shape[1:]).clone() for t in self.tensors()),
                                      self.family)

    # ------------------------------------------------------------------ state files

    def file_tensors(self, index: int = 0) -> dict[str, torch.Tensor]:
        """Row `index` of the WKV state as a state file's tensors ({blocks.{i}.att.time_state: (H, N, N)},
        [value, key], float32, and the record of its family and shape)."""
        if not 0 <= index < self.batch_size:
            raise ValueError(f"RWKVState: index {index} is outside the batch of {self.batch_size}")
        tensors = {STATE_KEY.format(i): file_layout(s[index], self.family).detach().float().cpu().contiguous()
                   for i, s in enumerate(self.wkv)}
        H, N = self.wkv[0].shape[1], self.wkv[0].shape[-1]
        return {**tensors, STATE_RECORD_KEY: state_record(self.family, self.n_layer, H, N)}

    def save(self, path: str | Path, index: int = 0) -> Path:
        """Write row `index` as a state file, atomically. Only the WKV state is written (that is what the
        format holds and what RWKV runtimes read); the token shifts are not, and start at zero when the
        file is read."""
        atomic_torch_save(self.file_tensors(index), path)
        return Path(path)


def read_state_file(path: str | Path, config=None, note: bool = True) -> list[torch.Tensor]:
    """A state file's tensors, layer by layer, as stored ((H, N, N) [value, key], float32), checked as
    state_file_layers checks them. `note`: say on stderr when the file records no family."""
    data = load_tensor_file(Path(path), "state file")
    layers = state_file_layers(data, config, f"state file {path}")
    if note:
        note_unrecorded(data, config, f"state file {path}")
    return layers


def note_unrecorded(data: dict, config, source: str) -> None:
    """A file without a record fits the model by its shapes alone: say which layout it is read in."""
    if config is None or STATE_RECORD_KEY in data:
        return
    family = get_family(config.family)
    layout = ("[value, key], turned to RWKV-6's own [key, value]" if family.state_file_transposed
              else "[value, key], as the model holds it")
    print(f"note: {source} does not record its model family; its shapes fit the model, so it is read as "
          f"{describe_state(config.family, config.n_layer, config.n_head, config.head_size)}, stored {layout}",
          file=sys.stderr)


def state_file_layers(data: dict, config=None, source: str = "state tensors") -> list[torch.Tensor]:
    """A state file's {blocks.{i}.att.time_state: (H, N, N)}, layer by layer, float32, checked: those keys
    for layers 0 .. L-1 and nothing else (but the record), square heads, finite values and, with `config`,
    the model's family (when recorded), layer count, heads and head size. A problem is a ValueError
    beginning with `source`."""
    record = read_state_record(data, source)
    data = {k: v for k, v in data.items() if k != STATE_RECORD_KEY}
    if not data:
        raise ValueError(f"{source} is empty: expected blocks.{{i}}.att.time_state tensors")
    if record is not None and config is not None:
        model = {"family": config.family, "n_layer": config.n_layer, "n_head": config.n_head,
                 "head_size": config.head_size}
        if record != model:
            raise ValueError(f"{source} is for {describe_state(**record)}; the model is {describe_state(**model)}")
    layers = {}
    for key, value in data.items():
        match = STATE_KEY_PATTERN.fullmatch(str(key))
        if match is None:
            raise ValueError(f"{source}: unexpected key {key} (a state file holds "
                             f"blocks.{{i}}.att.time_state only; is it an adapter or a model?)")
        if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.dim() != 3 \
                or value.shape[1] != value.shape[2]:
            what = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{source}: {key} is {what}, expected a float (H, N, N) tensor")
        layers[int(match.group(1))] = value.float()
    n_layer = config.n_layer if config is not None else len(layers)
    missing = [STATE_KEY.format(i) for i in range(n_layer) if i not in layers]
    extra = [STATE_KEY.format(i) for i in sorted(layers) if i >= n_layer]
    if missing or extra:
        problem = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise ValueError(f"{source}: {problem} (the model has {n_layer} layers, the file "
                         f"{len(layers)} states)")
    expected = (config.n_head, config.head_size, config.head_size) if config is not None else tuple(layers[0].shape)
    for i in range(n_layer):
        if tuple(layers[i].shape) != expected:
            raise ValueError(f"{source}: {STATE_KEY.format(i)} has shape {tuple(layers[i].shape)}, "
                             f"expected {expected} (H, N, N) for every layer")
    if record is not None and (n_layer, *expected) != (record["n_layer"], record["n_head"], record["head_size"],
                                                      record["head_size"]):
        raise ValueError(f"{source}: its record says {describe_state(**record)}, but it holds {n_layer} states "
                         f"of {expected}")
    for i, value in layers.items():
        if not torch.isfinite(value).all():
            raise ValueError(f"{source}: {STATE_KEY.format(i)} holds NaN or infinite values")
    return [layers[i] for i in range(n_layer)]
