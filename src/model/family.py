"""The model-family registry: one record per RWKV generation, read by every place that differs by family.

    family = get_family("x070")                  # RWKV-LM's version tag, as files record it
    family_of(model) / family_of(config)         # the record of a model or a config
    detect_family(state_dict)                    # the record whose checkpoint keys these are
    register_family(Family(...))                 # a new generation (see docs/architecture.md)

A family record names what is particular to a generation: its config and network classes, RWKV-LM's
initialisation rule, the keys that identify its checkpoints, the layout of its state files, the
linear layers adapters wrap by default, and its WKV operator. Loading and saving checkpoints,
presets, initialisation, RWKVState and state files, PeftConfig's default targets, adapter files,
generation, evaluation, the demo and the benchmarks all read it; none of them compares family names.
The built-in families are registered in families.py; this module imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch


@dataclass(frozen=True)
class Family:
    """What one RWKV generation is made of.

    name:            RWKV-LM's version tag ("x060", "x070"), recorded in adapter files, configs and states
    title:           how messages name it ("RWKV-6")
    preset_prefix:   its presets are configs/model/<prefix>-<size>.json, named "<prefix>-<size>"
    config_class:    its config (an RWKVConfig subclass whose class attribute `family` is `name`)
    network_class:   its network (an RWKVModel subclass), built from a config
    init_tensor:     RWKV-LM's initialisation, (key, shape, config, generator, nonzero) -> fp32 tensor
    detect_keys:     checkpoint keys that mark the family's files: a file is of the family that has all
                     of its detect_keys (the one with the most, when several do), or else of the one that
                     has the most of them (a damaged or partial file is still named by its family)
    default_targets: the linear layers of a block that adapters wrap when no targets are given
    state_file_transposed: a state file holds each head's state as [value, key]; True when the family's
                     own WKV state is [key, value] (so it is transposed on the way in and out)
    operator:        its WKV operator (the benchmarks time it)
    bare_presets:    its presets are also found by the bare size ("3b"), as RWKV-6's always were
    hf_layout:       its Hugging Face layout, if it has one: a module with hf_name(key), hf_tensor(key, t),
                     hf_shape(key, shape) and hf_config(config, dtype) (export.py --format hf)
    gguf_layout:     its llama.cpp GGUF layout, if it has one: a module with ARCH, entries(config) and
                     metadata(config) (export.py --format gguf)
    """

    name: str
    title: str
    preset_prefix: str
    config_class: type
    network_class: type
    init_tensor: Callable
    detect_keys: tuple[str, ...]
    default_targets: tuple[str, ...]
    state_file_transposed: bool
    operator: Callable
    bare_presets: bool = False
    hf_layout: object = None
    gguf_layout: object = None

    def __post_init__(self) -> None:
        if getattr(self.config_class, "family", None) != self.name:
            raise ValueError(f"Family {self.name!r}: {self.config_class.__name__}.family is "
                             f"{getattr(self.config_class, 'family', None)!r}, expected {self.name!r}")
        if not self.detect_keys or not self.default_targets:
            raise ValueError(f"Family {self.name!r}: detect_keys and default_targets must not be empty")


_REGISTRY: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a family to the registry (returns it). A name, preset prefix or config class already taken by
    another family is an error; registering the same record again is allowed."""
    if not isinstance(family, Family):
        raise ValueError(f"register_family: expected a Family, got {type(family).__name__}")
    for other in _REGISTRY.values():
        if other == family:
            return family
        clash = [what for what, a, b in (("name", other.name, family.name),
                                         ("preset prefix", other.preset_prefix, family.preset_prefix),
                                         ("config class", other.config_class, family.config_class)) if a == b]
        if family.bare_presets and other.bare_presets:
            clash.append("bare presets")
        if clash:
            raise ValueError(f"register_family: {family.title} ({family.name}) has the same "
                             f"{' and '.join(clash)} as {other.title} ({other.name})")
    _REGISTRY[family.name] = family
    return family


def families() -> tuple[Family, ...]:
    """Every registered family, in the order of registration."""
    return tuple(_REGISTRY.values())


def get_family(name: str) -> Family:
    """The family of this name ("x060"), or a ValueError listing the known ones."""
    if isinstance(name, Family):
        return name
    if name not in _REGISTRY:
        known = ", ".join(f"{f.name} ({f.title})" for f in _REGISTRY.values())
        raise ValueError(f"unknown model family {name!r}; known: {known}")
    return _REGISTRY[name]


def family_of(obj) -> Family:
    """The family of a config, a model (its `.config`), a Family or a family name."""
    if isinstance(obj, (Family, str)):
        return get_family(obj)
    config = obj.config if isinstance(obj, torch.nn.Module) else obj
    name = getattr(config, "family", None)
    if name is None:
        raise ValueError(f"{type(obj).__name__} is not an RWKV model or config (it has no family)")
    return get_family(name)


def detect_family(state_dict: Mapping[str, object], source: str = "checkpoint") -> Family:
    """The family whose checkpoints hold these keys (see Family.detect_keys); a ValueError naming the
    file when no family's keys are there."""
    scored = [((all(k in state_dict for k in f.detect_keys), present), f) for f in _REGISTRY.values()
              if (present := sum(k in state_dict for k in f.detect_keys))]
    if not scored:
        known = "; ".join(f"{f.title}: {', '.join(f.detect_keys)}" for f in _REGISTRY.values())
        hint = " (it looks like an RWKV-4/5 checkpoint)" if "blocks.0.att.time_first" in state_dict else ""
        raise ValueError(f"{source} is not a checkpoint of a known RWKV family{hint}; each family's files hold "
                         f"these keys: {known}")
    best = max(score for score, _ in scored)
    winners = [f for score, f in scored if score == best]
    if len(winners) > 1:
        raise ValueError(f"{source}: its keys fit {' and '.join(f.title for f in winners)} alike; give the "
                         f"family's config explicitly")
    return winners[0]
