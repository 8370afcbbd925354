"""src/bench/quant.py: loading a quantised base holds about the quantised model plus one tensor."""

import pytest
import torch

from src.bench.quant import make_checkpoint, measure_load
from src.model import build_model, parameter_shapes, resolve_config
from src.quant import QuantScheme, linears_to_quantize

MIB = 2 ** 20


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nf4", "int8"])
def test_loading_peaks_near_the_quantised_size(tmp_path, kind):
    """A 0.4B-shaped bf16 file (860 MiB): the peak of anonymous memory while loading it quantised is the
    quantised linears plus less than two of the largest linear's full-precision size and a margin."""
    config = resolve_config("rwkv7-0.4b")
    path = tmp_path / "m.pth"
    make_checkpoint(config, path)
    shapes = parameter_shapes(config)
    scheme = QuantScheme(kind)
    with torch.device("meta"):
        linears = linears_to_quantize(build_model(config), scheme).values()
    row = measure_load(path, kind)
    assert row["quantized"] == sum(scheme.weight_bytes(m.out_features, m.in_features) for m in linears)
    largest = max(m.weight.numel() for m in linears) * 4              # fp32 temporaries of one tensor
    assert row["peak"] < row["quantized"] + 2 * largest + 320 * MIB, {k: v / MIB for k, v in row.items()
                                                                      if isinstance(v, (int, float))}
    assert row["peak"] < sum(s.numel() for s in shapes.values()) * 2 * 0.6     # well below the bf16 model
