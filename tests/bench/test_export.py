"""src/bench/export.py: exporting holds about one tensor beyond the memory-mapped input."""

import pytest

from src.bench.export import main
from src.bench.quant import make_checkpoint
from src.model import parameter_shapes, resolve_config


@pytest.mark.slow
def test_export_peaks_near_one_tensor(tmp_path, capsys):
    """A 0.4B-shaped bf16 file (860 MiB) exported as .st: the process's peak anonymous memory is below twice
    its largest tensor (128 MiB) plus a margin, far below the model."""
    config = resolve_config("rwkv7-0.4b")
    make_checkpoint(config, tmp_path / "rwkv7-0.4b-random-bf16.pth")
    assert main(["--model", "rwkv7-0.4b", "--formats", "st", "--work_dir", str(tmp_path)]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| st |")][0]
    peak_mib = float(row.split("|")[2].replace("MiB", "").replace(",", ""))
    largest_mib = max(s.numel() for s in parameter_shapes(config).values()) * 2 / 2 ** 20
    assert peak_mib < 2 * largest_mib + 64, row
