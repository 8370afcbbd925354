"""Small models for the planner's tests: built for real on the CPU in fp32 (chunked WKV backend)."""

from __future__ import annotations

import pytest
import torch

from src.bench.held import HeldMemory
from src.model import families, resolve_config
from src.model.init import init_model
from src.peft import PeftConfig, apply_peft

FAMILY_TINY = {f.name: f"{f.preset_prefix}-tiny" for f in families()}


def tiny(family_name: str, **changes):
    """The family's tiny preset (n_layer 2, n_embd 128), with `changes`."""
    return resolve_config(FAMILY_TINY[family_name], wkv_backend="chunked").replace(**changes)


def peft_for(method: str, r: int = 16) -> PeftConfig:
    return PeftConfig(method="state") if method == "state" else PeftConfig(method=method, r=r)


def real_model(config, peft: PeftConfig | None):
    model = init_model(config, seed=0, nonzero=True)
    if peft is not None:
        apply_peft(model, peft, verbose=False)
    return model.train()


def held_forward(model, time: int, batch: int = 1) -> int:
    """HeldMemory's bytes kept after the forward (head=False), on the CPU."""
    idx = torch.randint(0, model.config.vocab_size, (batch, time), generator=torch.Generator().manual_seed(0))
    with HeldMemory() as held:
        out = model(idx, head=False)
        kept = held.bytes()
    del out
    return kept


@pytest.fixture(params=[f.name for f in families()])
def family_name(request) -> str:
    return request.param
