"""src/moved.py: the module paths from before src/ was grouped still import, with their public names,
and still run under `python -m`."""

import importlib
import subprocess
import sys

import pytest

from src.utils.paths import REPO_ROOT

# Every public name of the old modules (left out: the trainer's closure `adapter_file_writer`, now
# RWKVTrainingModule.write_weights, and the old parser's CONVERTERS table).
OLD_NAMES = {
    "src.atomic": "atomic_path atomic_write atomic_torch_save atomic_write_text",
    "src.bench_wkv": "CPU_DEFAULT GPU_DEFAULT Row sync median_ms make_inputs fla_call bench_backend copy_bandwidth_gbs "
                     "device_name versions run_benchmark fmt markdown write_section main",
    "src.bench": "TABLE_COLUMNS SCALE_COLUMNS METHODS PAPER Probe measure measure_in_subprocess make_inputs "
                 "matmul_tflops matmul_parameters cell write_csv KEY NUMERIC read_rows merged_rows plot ratio goals "
                 "markdown main REPO",
    "src.callbacks": "METRICS_COLUMNS StopRequest TrainingLog ProgressBar plot_losses Checkpointing rng_state "
                     "set_rng_state",
    "src.config": "WKV_BACKENDS REPO_ROOT PRESET_DIR dataclass_from_dict RWKV6Config preset_names resolve_config",
    "src.deepspeed_strategy": "BUCKET_SIZE CPUDeepSpeedStrategy make_strategy",
    "src.merge": "DTYPES MergeReport check_output_path merged_weight merge_into_base check_merge default_output main",
    "src.model": "LN_X_EPS time_shift TimeMix ChannelMix Block RWKV6 parameter_shapes check_state_dict "
                 "read_checkpoint load_rwkv6 rwkv6_state_dict save_rwkv6",
    "src.run_dir": "TRAINER_STATE PATTERN checkpoint_name checkpoints resumable find_resume_checkpoint",
    "src.tokenizer": "VOCAB_FILE VOCAB_SIZE WorldTokenizer",
    "src.train_config": "STRATEGIES PRECISIONS ACCELERATORS LR_SCHEDULES LOGGERS PEFT_CHOICES TrainConfig "
                        "convert_value read_config_file ALIASES KNOWN_KEYS build_parser parse_args config_from_values "
                        "validate",
    "src.trainer": "OOM_ADVICE NonFiniteLoss lr_at L2Wrap masked_cross_entropy RWKVTrainingModule "
                   "global_rank_from_env build_model write_run_config run main",
    "src.init_model": "DTYPES ZERO_MATRICES SMALL_MATRICES ZERO_LORA_DOWN init_tensor init_rwkv6_state_dict "
                      "init_rwkv6 main",
    "src.peft.adapter_io": "ADAPTER_FILE CONFIG_FILE FORMAT VERSION Adapter save_adapter read_adapter "
                           "read_rwkv_peft_adapter find_adapter read_any_adapter base_signature_difference load_adapter",
}


@pytest.mark.parametrize("old", sorted(OLD_NAMES))
def test_old_modules_keep_their_public_names(old):
    module = importlib.import_module(old)
    missing = [name for name in OLD_NAMES[old].split() if not hasattr(module, name)]
    assert not missing, f"{old} lost {missing}"


def test_old_names_are_the_new_objects():
    from src.config import PRESET_DIR, RWKV6Config
    from src.model import RWKV6Config as same
    from src.train import run
    from src.trainer import run as old_run
    from src.utils.paths import MODEL_PRESETS
    assert RWKV6Config is same and old_run is run and PRESET_DIR == MODEL_PRESETS
    with pytest.raises(AttributeError, match=r"module 'src.trainer' \(moved to src.train.trainer\) has no attribute"):
        importlib.import_module("src.trainer").nothing


@pytest.mark.parametrize("old", ["src.merge", *(pytest.param(m, marks=pytest.mark.slow)
                                               for m in ("src.bench_wkv", "src.bench"))])
def test_old_paths_run_under_python_m(old):
    done = subprocess.run([sys.executable, "-m", old, "--help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:") and "--device" in done.stdout
