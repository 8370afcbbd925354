"""What every family's model configuration shares: one explicit, immutable object, no environment variables.

Each family's config (RWKV6Config in rwkv6/config.py, RWKV7Config in rwkv7/config.py) is a frozen
dataclass on RWKVConfig. Architecture fields describe the shapes stored in a checkpoint (its
`shape_fields`); runtime fields (`grad_cp`, `wkv_backend`, `wkv_chunk_size`) say how to run it. Two
models built from two different configs coexist in one process.

    resolve_config("rwkv7-1.5b")        a shipped preset (configs/model/<prefix>-<size>.json)
    resolve_config("3b")                RWKV-6's presets also go by their bare size
    resolve_config("my-model.json")     a config file (its "family" field, or the family whose fields it uses)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar, Mapping

import torch

from ..utils.options import dataclass_from_dict
from ..utils.paths import MODEL_PRESETS
from .family import Family, families, get_family


class RWKVConfig:
    """The shared behaviour of the families' config dataclasses. A subclass sets

        family          its Family's name ("x060")
        shape_fields    the fields a checkpoint's shapes determine, in order
        backends        its operator's backend names (wkv_backend must be one)

    and may override `fill_defaults` (widths derived from n_embd) and `check` (its own constraints).
    """

    family: ClassVar[str] = ""
    shape_fields: ClassVar[tuple[str, ...]] = ()
    backends: ClassVar[tuple[str, ...]] = ()
    positive_runtime_fields: ClassVar[tuple[str, ...]] = ("wkv_chunk_size",)

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field, value in self.fill_defaults().items():
            if getattr(self, field) is None:
                object.__setattr__(self, field, value)
        for field in (*self.shape_fields, *self.positive_runtime_fields):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}.{field} must be a positive integer, got {value!r}")
        if self.dim_att % self.head_size != 0:
            raise ValueError(f"{name}: dim_att={self.dim_att} is not a multiple of head_size={self.head_size}")
        if self.wkv_backend not in self.backends:
            raise ValueError(f"{name}.wkv_backend must be one of {self.backends}, got {self.wkv_backend!r}")
        if not isinstance(self.grad_cp, bool):
            raise ValueError(f"{name}.grad_cp must be True or False, got {self.grad_cp!r}")
        self.check()

    def fill_defaults(self) -> dict:
        """{field: value} for the fields left None (widths RWKV-LM derives from n_embd)."""
        return {}

    def check(self) -> None:
        """The family's own constraints (ValueError naming the field)."""

    @property
    def n_head(self) -> int:
        return self.dim_att // self.head_size

    def replace(self, **changes) -> "RWKVConfig":
        """A copy with some fields changed (the config itself is immutable)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def shape_signature(self) -> dict:
        """The family and the architecture fields: what a checkpoint's keys and shapes determine."""
        return {"family": self.family, **{k: getattr(self, k) for k in self.shape_fields}}

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "config") -> "RWKVConfig":
        """The config from a dict of its fields (a "family" entry, when present, must be this family's)."""
        data = dict(data)
        named = data.pop("family", cls.family)
        if named != cls.family:
            raise ValueError(f"{source} is a config of family {named!r}, not {cls.family!r} "
                             f"({get_family(cls.family).title})")
        return dataclass_from_dict(cls, data, source)

    @classmethod
    def from_json(cls, path: str | Path) -> "RWKVConfig":
        """A config JSON file, of whichever family it is (see config_from_dict)."""
        return config_from_json(path)

    @classmethod
    def preset(cls, name: str, **overrides) -> "RWKVConfig":
        """A shipped preset of this family: configs/model/<prefix>-<name>.json ('tiny', '0.1b', ...; the
        prefixed name works too)."""
        family = get_family(cls.family)
        size = name.removeprefix(family.preset_prefix + "-")
        path = MODEL_PRESETS / f"{family.preset_prefix}-{size}.json"
        if not path.exists():
            raise ValueError(f"unknown {family.title} preset {name!r}; available: {preset_names(family.name)}")
        return cls.from_dict(_read_json(path), source=str(path)).replace(**overrides)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
                        **runtime) -> "RWKVConfig":
        """Every size read from the shapes of a checkpoint of this family (RWKV-LM key names)."""
        family = get_family(cls.family)
        missing = [k for k in cls.size_sources() if k not in state_dict]
        if missing:
            raise ValueError(f"{source}: not an {family.title} checkpoint, missing key(s) {missing}"
                             f"{other_family_hint(state_dict, family)}")
        layer_ids = {int(k.split(".")[1]) for k in state_dict if k.startswith("blocks.")}
        return cls(n_layer=max(layer_ids) + 1, **cls.sizes_from(state_dict, source), **runtime)

    @classmethod
    def size_sources(cls) -> dict[str, str]:
        """{key: the sizes read from its shape}: what `sizes_from` reads (named when a size looks wrong)."""
        raise NotImplementedError

    @classmethod
    def sizes_from(cls, state_dict: Mapping[str, torch.Tensor], source: str) -> dict:
        """Every shape field except n_layer, from the shapes of `size_keys`."""
        raise NotImplementedError


def other_family_hint(state_dict: Mapping[str, object], expected: Family) -> str:
    """' (this looks like an RWKV-7 checkpoint: ...)' when the keys are another family's."""
    from .family import detect_family
    try:
        found = detect_family(state_dict)
    except ValueError as e:
        return " (it looks like an RWKV-4/5 checkpoint)" if "RWKV-4/5" in str(e) else ""
    if found.name == expected.name:
        return ""
    return f" (this looks like an {found.title} checkpoint: load it with load_model, which reads either family)"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"model config {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"model config {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"model config {path} must hold a JSON object, got {type(data).__name__}")
    return data


def config_from_dict(data: Mapping, source: str = "config") -> RWKVConfig:
    """A config of the family the dict names ("family": "x070"), or else of the one family whose fields
    hold every key given (RWKV-6's when several do: the fields of its old config files fit others too)."""
    if "family" in data:
        return get_family(data["family"]).config_class.from_dict(data, source)
    fitting = [f for f in families() if set(data) <= {x.name for x in dataclasses.fields(f.config_class)}]
    default = [f for f in families() if f.bare_presets]
    if len(fitting) > 1:
        fitting = [f for f in fitting if f.bare_presets] or fitting
    if not fitting and default:                   # its config class names the unknown fields
        fitting = default
    if len(fitting) != 1:
        raise ValueError(f"{source}: its fields {sorted(data)} fit "
                         f"{'no' if not fitting else ' and '.join(f.title for f in fitting)} model family; "
                         f"name one with \"family\": {[f.name for f in families()]}")
    return fitting[0].config_class.from_dict(data, source)


def config_from_json(path: str | Path) -> RWKVConfig:
    return config_from_dict(_read_json(Path(path)), source=str(path))


def preset_names(family: str | None = None) -> list[str]:
    """The shipped presets, smallest first. For RWKV-6 ("x060", the default) the bare sizes ('3b');
    other families' are prefixed ('rwkv7-1.5b')."""
    fam = get_family(family) if family is not None else next(f for f in families() if f.bare_presets)
    prefix = fam.preset_prefix + "-"

    def size(name: str) -> tuple:
        try:
            return (0, float(name.removesuffix("b")))
        except ValueError:
            return (0, 0.0) if name == "tiny" else (1, name)
    names = sorted((p.stem.removeprefix(prefix) for p in MODEL_PRESETS.glob(f"{prefix}*.json")), key=size)
    return names if fam.bare_presets else [prefix + n for n in names]


def resolve_config(spec: str, **runtime) -> RWKVConfig:
    """A preset name ('rwkv7-1.5b', 'rwkv6-3b', or a bare size such as '3b' for RWKV-6) or the path of
    a config JSON file: the config of its family, with `runtime` options set."""
    if spec.endswith(".json") or "/" in spec:
        return config_from_json(spec).replace(**runtime)
    for family in families():
        if spec.startswith(family.preset_prefix + "-"):
            return family.config_class.preset(spec, **runtime)
    bare = [f for f in families() if f.bare_presets]
    if not bare:
        raise ValueError(f"unknown model preset {spec!r}; presets are named <family>-<size>: "
                         f"{', '.join(n for f in families() for n in preset_names(f.name))}")
    try:
        return bare[0].config_class.preset(spec, **runtime)
    except ValueError:
        others = [n for f in families() if not f.bare_presets for n in preset_names(f.name)]
        raise ValueError(f"unknown model preset {spec!r}; available: {preset_names(bare[0].name)}"
                         f"{'; ' + ', '.join(others) if others else ''}") from None
