"""Where the repository's own files are. The root is computed here, once, from this file's place."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_PRESETS = REPO_ROOT / "configs" / "model"      # rwkv6-<name>.json: model shapes
TRAIN_PRESETS = REPO_ROOT / "configs" / "train"      # <method>.json: scripts/train_<method>.sh defaults
CUDA_SOURCES = REPO_ROOT / "cuda"                    # the WKV kernels
SAMPLE_DATA = REPO_ROOT / "data"                     # sample.jsonl, sample-sft.jsonl
DOCS = REPO_ROOT / "docs"                            # benchmarks.md and the benchmark files


def shown(path: Path) -> str:
    """A path relative to the repository when it lies inside it (for messages and reports)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
