"""src/bench/rollout.py (scripts/bench_rollout.sh): grouped against one-after-another rollouts on a tiny model,
the table row and its docs section; every flag documented with its default."""

import argparse

import pytest

from src.bench.rollout import main


@pytest.mark.parametrize("model", ["rwkv7-tiny", pytest.param("tiny", marks=pytest.mark.slow)])
def test_cpu_row_into_its_section(model, tmp_path, capsys):
    md = tmp_path / "benchmarks.md"
    assert main(["--model", model, "--group_size", "3", "--max_new_tokens", "4", "--prompt_len", "5",
                 "--device", "cpu", "--write", str(md)]) == 0
    text = md.read_text()
    assert "<!-- rollout:cpu -->\n### GRPO rollouts: grouped against one after another, CPU\n" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| {model} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["3", "5", "4"] and cells[7] == "3 of 3"          # fp32: the same completions
    sequential, grouped = (float(c.replace(",", "")) for c in cells[4:6])
    assert sequential > 0 and grouped > 0                                  # the ratio of the unrounded rates:
    assert float(cells[6].removesuffix("x")) == pytest.approx(grouped / sequential, rel=0.2)
    out = capsys.readouterr()
    assert "Command: `python -m src.bench.rollout --model" in out.out and "3 of 3 completions identical" in out.err


def test_every_flag_has_help_and_a_default(monkeypatch):
    parsers = []

    def capture(self, *args, **kwargs):
        parsers.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        main([])
    for action in parsers[0]._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            assert "default: " in action.help, action.option_strings


@pytest.mark.parametrize("flags, message", [(["--group_size", "0"], "must be positive"),
                                            (["--seed", "-1"], "--seed must be >= 0")])
def test_bad_flags(flags, message, capsys):
    with pytest.raises(SystemExit) as caught:
        main(flags)
    assert caught.value.code == 2 and message in capsys.readouterr().err
