"""src/utils/options.py: fields that carry their help; parsing by the real field types; --help lines."""

import argparse
from dataclasses import dataclass

import pytest

from src.utils.options import add_flags, convert, dataclass_from_dict, describe, option


@dataclass
class Example:
    name: str = option(help="a required name", metavar="NAME")
    count: int = option(3, "how many", minimum=1)
    rate: float | None = option(None, "how fast", derived="count / 10")
    mode: str = option("a", "which mode", choices=("a", "b"))
    on: bool = option(False, "switch it on")
    tags: list[str] = option(default_factory=list, help="labels")
    hidden: int = option(0, "not a flag", flag=False)
    renamed: tuple[str, ...] = option(default_factory=lambda: ("x",), help="a tuple", flag="other_name")


@pytest.mark.parametrize("name, value, expected", [
    ("count", "7", 7), ("count", 7.0, 7), ("rate", "1e-3", 1e-3), ("rate", "none", None), ("rate", None, None),
    ("on", "1", True), ("on", "false", False), ("on", True, True), ("tags", '["a","b"]', ["a", "b"]),
    ("tags", "a,b c", ["a", "b", "c"]), ("tags", ["a,b", "c"], ["a", "b", "c"]), ("renamed", "p q", ("p", "q")),
    ("name", 5, "5"),
])
def test_values_are_parsed_by_the_real_type(name, value, expected):
    assert convert(Example, name, value) == expected
    assert type(convert(Example, name, value)) is type(expected)


@pytest.mark.parametrize("name, value, message", [
    ("count", "x", r"--count 'x': invalid literal for int"), ("count", 2.5, r"--count 2.5: expected a whole number"),
    ("count", True, r"--count True: expected a whole number"), ("on", "maybe", r"expected 0/1 or true/false"),
    ("name", ["a"], r"--name \['a'\]: expected a string"), ("rate", "fast", r"--rate 'fast': could not convert"),
])
def test_bad_values_name_the_flag(name, value, message):
    with pytest.raises(ValueError, match=message):
        convert(Example, name, value)


def test_help_lines():
    fields = {f.name: f for f in Example.__dataclass_fields__.values()}
    assert describe(fields["count"]) == "how many (default: 3)"
    assert describe(fields["rate"]) == "how fast (default: count / 10)"
    assert describe(fields["mode"]) == "which mode (default: a; one of: a, b)"
    assert describe(fields["on"]) == "switch it on (default: 0)"
    assert describe(fields["tags"]) == "labels (default: (none))"
    assert describe(fields["name"]) == "a required name"


def test_flags_from_fields():
    parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    flags = add_flags(parser, Example, defaults={"count": 5})
    assert flags == {"name": "name", "count": "count", "rate": "rate", "mode": "mode", "on": "on", "tags": "tags",
                     "other_name": "renamed"}
    help_text = " ".join(parser.format_help().split())
    assert "--count N how many (default: 5)" in help_text and "--mode a|b" in help_text
    assert "--hidden" not in help_text
    assert vars(parser.parse_args(["--tags", "a", "b", "--other_name", "z"])) == {"tags": ["a", "b"], "other_name": ["z"]}


def test_dataclass_from_dict_names_unknown_and_missing_fields():
    assert dataclass_from_dict(Example, {"name": "n", "count": 2}, "x").count == 2
    with pytest.raises(ValueError, match=r"src: unknown Example field\(s\) \['colour'\]"):
        dataclass_from_dict(Example, {"name": "n", "colour": 1}, "src")
    with pytest.raises(ValueError, match=r"src: missing required Example field\(s\) \['name'\]"):
        dataclass_from_dict(Example, {}, "src")
