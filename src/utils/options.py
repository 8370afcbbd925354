"""Configuration dataclasses that explain themselves.

A field declared with `option(default, "what it does", choices=...)` carries its help text
and its choices. From them:
  add_flags(parser, cls)        one --flag per field, whose --help line gives the text, the
                                default (or the rule that derives it) and the choices;
  convert(cls, name, value)     a flag's or a config file's value parsed by the field's real
                                type: bool, int, float, str, list[str], tuple[str, ...], X | None;
  dataclass_from_dict(cls, d)   an instance, naming unknown and missing fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import MISSING
from typing import Any, Callable, Mapping


def option(default: Any = MISSING, help: str = "", *, choices: typing.Iterable[str] | None = None,
           default_factory: Any = MISSING, derived: str | None = None, flag: str | bool | None = None,
           metavar: str | None = None, minimum: float | None = None) -> Any:
    """A dataclass field with its documentation.

    derived: for a field whose default (None) is computed from other values, the rule, as --help shows it.
    flag: the command-line name when it differs from the field's; False: no flag.
    minimum: the smallest valid value (checked by the owner's validation).
    """
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None, "derived": derived,
                "flag": flag, "metavar": metavar, "minimum": minimum}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def flag_name(f: dataclasses.Field) -> str | None:
    """The command-line name of a field (None: it has none)."""
    flag = f.metadata.get("flag")
    if flag is False:
        return None
    return flag or f.name


# ------------------------------------------------------------------ parsing by type

def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 0/1 or true/false, got {value!r}")


def parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(value)
    return int(str(value).strip())


def parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def parse_str(value: Any) -> str:
    if isinstance(value, (list, dict, bool)) or value is None:
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def parse_list(value: Any) -> list[str]:
    """["time", "ln"], '["time","ln"]' (RWKV-PEFT's form), "time,ln" or "time ln"."""
    if isinstance(value, (list, tuple)):
        items: list[str] = []
        for v in value:
            items.extend(parse_list(v))
        return items
    text = str(value).strip()
    if text.startswith("["):
        parsed = json.loads(text)
        if not isinstance(parsed, list):
            raise ValueError(f"expected a list, got {text!r}")
        return [str(v) for v in parsed]
    return [v for v in text.replace(",", " ").split() if v]


def _optional(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        return None if value is None or str(value).strip().lower() in ("", "none", "null") else inner(value)
    return convert


def converter(tp: Any) -> Callable[[Any], Any]:
    """The parser of one type (as typing.get_type_hints gives it)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _optional(converter(rest[0]))
    if origin is list and args == (str,):
        return parse_list
    if origin is tuple and args in ((str, ...), (str, Ellipsis)):
        return lambda value: tuple(parse_list(value))
    simple = {bool: parse_bool, int: parse_int, float: parse_float, str: parse_str}
    if tp in simple:
        return simple[tp]
    raise TypeError(f"no parser for the type {tp!r}")


def field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def convert(cls, name: str, value: Any, flag: str | None = None) -> Any:
    """Parse `value` for field `name` of `cls`; a bad value is a ValueError naming the flag."""
    try:
        return converter(field_types(cls)[name])(value)
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"--{flag or name} {value!r}: {e}") from None


def dataclass_from_dict(cls, data: Mapping, source: str):
    """cls(**data), refusing unknown fields and reporting missing required ones by name."""
    fields = dataclasses.fields(cls)
    known = {f.name for f in fields if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{source}: unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    required = [f.name for f in fields
                if f.init and f.default is MISSING and f.default_factory is MISSING]
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{source}: missing required {cls.__name__} field(s) {missing}")
    return cls(**dict(data))


# ------------------------------------------------------------------ --help

def format_value(value: Any) -> str:
    """How a value reads on the command line: booleans as 0/1, lists space-separated."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if value else "(none)"
    if isinstance(value, float):
        return f"{value:.6g}"
    if value == "":
        return '""'
    return str(value)


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def describe(f: dataclasses.Field, default: Any = MISSING) -> str:
    """The --help text of a field: what it does (default: ...; one of: ...)."""
    default = default_of(f) if default is MISSING else default
    notes = []
    if f.metadata.get("derived"):
        notes.append(f"default: {f.metadata['derived']}")
    elif default is not MISSING:
        notes.append(f"default: {format_value(default)}")
    if f.metadata.get("choices"):
        notes.append("one of: " + ", ".join(map(str, f.metadata["choices"])))
    text = f.metadata.get("help", "")
    return f"{text} ({'; '.join(notes)})" if notes else text


def metavar(f: dataclasses.Field, tp: Any) -> str:
    if f.metadata.get("metavar"):
        return f.metadata["metavar"]
    if f.metadata.get("choices"):
        listed = "|".join(map(str, f.metadata["choices"]))
        return listed if len(listed) <= 30 else f.name.upper()      # long lists: in the help text only
    names = {bool: "0|1", int: "N", float: "X", str: "S"}
    rest = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return names.get(rest[0], "ITEM")


def is_list(tp: Any) -> bool:
    """A list or tuple type, or one of them | None."""
    rest = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) in (
        typing.Union, types.UnionType) else [tp]
    return len(rest) == 1 and typing.get_origin(rest[0]) in (list, tuple)


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls, defaults: Mapping[str, Any] | None = None,
              skip: typing.Container[str] = ()) -> dict[str, str]:
    """One --flag per field of `cls` (values stay strings: parse them with `convert`).
    `defaults` overrides the default shown for a field. Returns {flag: field name}."""
    types_ = field_types(cls)
    flags = {}
    for f in dataclasses.fields(cls):
        name = flag_name(f)
        if name is None or f.name in skip or not f.init:
            continue
        tp = types_[f.name]
        shown = (defaults or {}).get(f.name, MISSING)
        parser.add_argument(f"--{name}", dest=name, nargs="+" if is_list(tp) else None, metavar=metavar(f, tp),
                            help=describe(f, shown).replace("%", "%%"))
        flags[name] = f.name
    return flags
