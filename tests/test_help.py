"""Every entry point explains every flag in --help: what it does and its default."""

import argparse

import pytest

import src.bench.adapters
import src.bench.export
import src.bench.head
import src.bench.infctx
import src.bench.quant
import src.bench.table
import src.bench.trainer
import src.bench.wkv
import src.data.make_data
import src.demo
import src.export.cli
import src.infer.evaluate
import src.infer.generate
import src.model.init
import src.peft.merge
import src.plan.against_table
import src.train.trainer


class Captured(Exception):
    def __init__(self, parser):
        self.parser = parser


@pytest.mark.parametrize("main", [src.train.trainer.main, src.peft.merge.main, src.model.init.main,
                                  src.data.make_data.main, src.demo.main, src.bench.wkv.main, src.bench.table.main,
                                  src.bench.adapters.main, src.bench.trainer.main, src.bench.infctx.main,
                                  src.bench.head.main, src.bench.quant.main, src.bench.export.main, src.export.cli.main,
                                  src.plan.against_table.main,
                                  src.infer.generate.main, src.infer.evaluate.main],
                         ids=["train.py", "merge.py", "init_model", "make_data", "demo", "bench_wkv", "bench_table",
                              "bench_adapters", "bench_trainer", "bench_infctx", "bench_head", "bench_quant", "bench_export", "export.py",
                              "plan_against_table", "generate.py",
                              "eval.py"])
def test_every_flag_has_help_and_a_default(main, monkeypatch):
    def capture(self, *args, **kwargs):
        raise Captured(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(Captured) as caught:
        main([])
    parser = caught.value.parser
    one_required = {id(a) for g in parser._mutually_exclusive_groups if g.required for a in g._group_actions}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and len(action.help.split()) >= 2, f"{parser.prog} {name}: no help"
        if action.option_strings and not (action.required or id(action) in one_required
                                          or action.help.startswith("the same as")):
            assert "default: " in action.help or "(default" in action.help, f"{parser.prog} {name}: no default"
