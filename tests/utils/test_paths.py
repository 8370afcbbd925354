"""src/utils/paths.py: the repository's own files, found from one place."""

from src.utils.paths import CUDA_SOURCES, MODEL_PRESETS, REPO_ROOT, SAMPLE_DATA, TRAIN_PRESETS, shown


def test_paths_point_into_the_repository(tmp_path):
    assert (REPO_ROOT / "train.py").is_file() and (REPO_ROOT / "merge.py").is_file()
    assert (MODEL_PRESETS / "rwkv6-tiny.json").is_file() and (TRAIN_PRESETS / "bone.json").is_file()
    assert (CUDA_SOURCES / "wkv6_cuda.cu").is_file() and (SAMPLE_DATA / "sample.jsonl").is_file()
    assert shown(REPO_ROOT / "docs" / "x.md") == "docs/x.md" and shown(tmp_path) == str(tmp_path)
