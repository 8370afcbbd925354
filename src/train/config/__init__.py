"""train.py's configuration: one dataclass, filled from defaults < --config FILE(s) < command-line flags.

    train_config.py  TrainConfig: every flag with its help, default and choices
    reading.py       flags, --config files and the short forms into a TrainConfig (parse_args, config_from_values)
    derived.py       the values derived when not given (lr_final, warmup_steps, val_every, precision)
    validation.py    validate: the values checked alone; what needs a file, the model or the data is
                     checked by the run's preflight (src/train/preflight.py)
"""

from .derived import derive, describe_derived
from .reading import (ALIASES, KNOWN_KEYS, TRAIN_FLAGS, build_parser, config_from_values, convert_value, parse_args,
                      read_config_file)
from .train_config import (ACCELERATORS, DEFAULT_PEFT, LOGGERS, LR_SCHEDULES, PEFT_CHOICES, PEFT_FLAGS, PRECISIONS,
                           STRATEGIES, TrainConfig)
from .validation import validate

__all__ = ["TrainConfig", "STRATEGIES", "PRECISIONS", "ACCELERATORS", "LR_SCHEDULES", "LOGGERS", "PEFT_CHOICES",
           "DEFAULT_PEFT", "PEFT_FLAGS", "TRAIN_FLAGS", "KNOWN_KEYS", "ALIASES", "build_parser", "parse_args",
           "read_config_file", "convert_value", "config_from_values", "derive", "describe_derived", "validate"]
