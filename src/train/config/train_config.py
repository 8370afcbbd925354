"""TrainConfig: every training flag as a field with its help text, default and choices.

Flag names are RWKV-LM's and RWKV-PEFT's where they exist (`python train.py --help` prints
them); the adapter flags are PeftConfig's (src/peft/config.py), held here as `TrainConfig.peft`.
A new training flag is a new field here, with `option(default, help, ...)`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ...data.dataset import DATA_TYPES
from ...peft.config import PeftConfig
from ...peft.registry import PEFT_METHODS
from ...quant.scheme import BLOCKSIZES, QUANT_TYPES, QuantScheme
from ...wkv6 import BACKENDS as WKV_BACKENDS
from ...utils.options import flag_name, option

STRATEGIES = ("deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_2_offload",
              "deepspeed_stage_3", "deepspeed_stage_3_offload")
PRECISIONS = ("bf16", "fp32", "tf32")
ACCELERATORS = ("auto", "cpu", "gpu")
LR_SCHEDULES = ("cos", "exp", "constant")
LOGGERS = ("csv", "tensorboard", "wandb")
OBJECTIVES = ("lm", "dpo", "grpo")
PEFT_CHOICES = (*PEFT_METHODS, "none")
DEFAULT_PEFT = PeftConfig(method="bone", r=64)
DEFAULT_WARMUP = 10
# The flags of PeftConfig's fields ({flag: field}); --peft (the method, or none) is handled apart.
PEFT_FLAGS = {flag_name(f): f.name for f in dataclasses.fields(PeftConfig) if flag_name(f)}


@dataclass
class TrainConfig:
    # model
    load_model: str = option("", "the base .pth to fine-tune (RWKV-6 or RWKV-7, told by its keys); empty: a random init of --model, saved as "
                                 "PROJ_DIR/base.pth", metavar="PATH")
    model: str = option("", "a model preset (RWKV-6: tiny, 0.1b, ..., 14b or rwkv6-3b; RWKV-7: rwkv7-tiny, "
                            "..., rwkv7-13.3b; configs/model/) or config JSON, for a random init; with --load_model, it must describe that file; a .pth here means --load_model",
                        metavar="PRESET|FILE")
    proj_dir: str = option("out", "the run's directory: train_config.json, metrics.csv, loss.png, "
                                  "checkpoint-NNNNNN/", metavar="DIR")
    # data
    data_file: str = option("", "binidx data: PREFIX.bin and PREFIX.idx (scripts/make_data.sh writes them)",
                            metavar="PREFIX")
    data_type: str = option("binidx", "binidx: RWKV-LM's random windows across documents; pad: one document per "
                                      "sample; sft: like pad, loss on the responses only", choices=DATA_TYPES)
    ctx_len: int = option(512, "tokens per sample", minimum=1)
    chunk_ctx: int = option(0, "infctx: run each sample as chunks of this many tokens, every state carried to the "
                               "next chunk with its gradient, each chunk recomputed in the backward; memory is one "
                               "chunk's activations plus the states between chunks, the loss and gradients those of "
                               "the whole sample; 0: the whole sample at once", minimum=0)
    head_chunk: int = option(0, "compute the head and the loss over this many tokens at a time, each chunk's logits "
                                "recomputed in the backward, so the (micro_bsz, ctx_len, vocab) logits and their "
                                "gradient never exist whole; the loss and gradients are the same; costs one more head "
                                "matmul per step; 0: all tokens at once", minimum=0)
    micro_bsz: int = option(1, "samples per GPU per forward", minimum=1)
    num_workers: int = option(0, "DataLoader worker processes", minimum=0)
    val_data: str = option("", "held-out binidx data: eval.py's loss on it (windows of ctx_len, sft responses only "
                               "with --data_type sft) every --val_every steps and at the end, as val_loss in "
                               "metrics.csv, the progress bar and loss.png; empty: no validation", metavar="PREFIX")
    val_every: int | None = option(None, "validate every N optimizer steps (with --val_data)",
                                   derived="the checkpoint interval, epoch_steps x epoch_save", minimum=1)
    val_windows: int = option(0, "validate on the first K windows of --val_data only; 0: all", minimum=0)
    # length and saving (RWKV-LM's mini-epochs)
    epoch_steps: int = option(1000, "optimizer steps per epoch", minimum=1)
    epoch_count: int = option(1, "epochs; the run is epoch_steps x epoch_count optimizer steps", minimum=1)
    epoch_save: int = option(1, "save a checkpoint every N epochs (and always at the end)", minimum=1)
    keep_trainer_states: int = option(1, "checkpoints that keep the optimizer state for --resume, newest first "
                                         "(every checkpoint keeps its adapter)", minimum=0)
    # optimizer and schedule
    lr_init: float = option(1e-4, "peak learning rate, reached after the warmup")
    lr_final: float | None = option(None, "learning rate at the last step", derived="lr_init / 10")
    lr_schedule: str = option("cos", "decay from lr_init to lr_final after the warmup", choices=LR_SCHEDULES)
    warmup_steps: int | None = option(None, "linear warmup steps from 0 to lr_init",
                                      derived=f"{DEFAULT_WARMUP}, or a tenth of the run when that is shorter",
                                      minimum=0)
    beta1: float = option(0.9, "Adam beta1")
    beta2: float = option(0.99, "Adam beta2")
    adam_eps: float = option(1e-8, "Adam epsilon")
    weight_decay: float = option(0.0, "AdamW weight decay, on the adapter matrices only (every matrix when "
                                      "--peft none)", minimum=0)
    grad_clip: float = option(1.0, "clip the gradient norm to this (0: no clipping)", minimum=0)
    accumulate_grad_batches: int = option(1, "micro-batches per optimizer step", minimum=1)
    l2wrap: bool = option(True, "RWKV-LM's L2Wrap: a small push of each position's largest logit towards 0")
    # hardware
    accelerator: str = option("auto", "where to train; auto: a GPU when one is visible", choices=ACCELERATORS)
    strategy: str = option("deepspeed_stage_1", "DeepSpeed ZeRO stage (offload: optimizer, and parameters at "
                                                "stage 3, in CPU RAM)", choices=STRATEGIES)
    devices: int = option(1, "GPUs (or CPU processes) per node", minimum=1)
    num_nodes: int = option(1, "machines", minimum=1)
    precision: str | None = option(None, "bf16: bf16 weights and activations, fp32 adapters; fp32; tf32: fp32 "
                                         "with TF32 matmuls", choices=PRECISIONS, derived="bf16 on a GPU, fp32 on "
                                                                                         "a CPU")
    grad_cp: bool = option(False, "gradient checkpointing: recompute each block in the backward (less memory)")
    wkv_backend: str = option("auto", "the WKV operator's implementation (src/wkv6, src/wkv7); auto: our "
                                      "CUDA kernel for bf16 on a GPU, chunked otherwise", choices=WKV_BACKENDS)
    quant: str = option("none", "hold the frozen base's linear layers quantised through bitsandbytes (QLoRA): nf4 or "
                                "fp4 (4 bits a value, an fp32 scale per --quant_blocksize values) or int8 (a scale "
                                "per row); quantised while loading, tensor by tensor; every adapter method and state "
                                "tuning train on it; adapters record it; none: the model dtype",
                        choices=("none", *QUANT_TYPES))
    quant_blocksize: int = option(64, "values per scale of nf4 / fp4 (a linear layer's inputs must be a multiple)",
                                  choices=BLOCKSIZES)
    quant_head: bool = option(False, "with --quant, hold the head quantised too (it stays in the model dtype by "
                                     "default, as in QLoRA)")
    seed: int = option(42, "seeds the data order, the adapters' init and dropout")
    load_state: str = option("", "start the tuned initial states (--peft state, --train_state 1) from this state "
                                 "file (RWKV-LM's or RWKV-PEFT's blocks.{i}.att.time_state .pth, or a state.pth of "
                                 "ours); empty: zeros", metavar="FILE")
    # adapters: --peft METHOD|none and the flags of PeftConfig's fields
    peft: PeftConfig | None = option(default_factory=lambda: DEFAULT_PEFT, flag=False,
                                     help="the adapters; None: full fine-tuning")
    # objective: what the run optimises (src/train/objective.py; preference and reward tuning in src/align)
    objective: str = option("lm", "lm: next-token cross-entropy on --data_type's targets; dpo: Direct Preference "
                                  "Optimization on preference pairs (make_data.sh's {prompt|messages, chosen, rejected} "
                                  "data), the reference being the base with the adapters switched off; grpo: Group "
                                  "Relative Policy Optimization on prompts (a .jsonl of {prompt|messages, answer}), "
                                  "--group_size completions sampled per prompt and scored by --reward",
                            choices=OBJECTIVES)
    dpo_beta: float = option(0.1, "DPO's beta: how far the policy may move from the reference (larger: closer)",
                             minimum=0)
    dpo_label_smoothing: float = option(0.0, "DPO's label smoothing: the chance a preference label is wrong (0: plain "
                                             "DPO)", minimum=0)
    ref_precompute: bool = option(False, "DPO: compute the reference log-probabilities of every pair once, in one "
                                         "pass before training, instead of in each step (a forward less per step)")
    group_size: int = option(8, "GRPO: completions sampled per prompt (a group; advantages are relative to it)",
                             minimum=2)
    max_new_tokens: int = option(256, "GRPO: the longest completion, in tokens (prompt + completion <= ctx_len)",
                                 minimum=1)
    temperature: float = option(1.0, "GRPO: sampling temperature of the completions (the policy's log-probabilities "
                                     "are taken at the same temperature)")
    top_p: float = option(1.0, "GRPO: sample among the most probable tokens whose probability reaches P")
    kl_beta: float = option(0.04, "GRPO: weight of the KL penalty towards the reference (the base, adapters off); "
                                  "0: no reference forward", minimum=0)
    clip_eps: float = option(0.2, "GRPO: the policy ratio's clip range, 1 +- eps", minimum=0)
    reward: list[str] = option(default_factory=lambda: ["exact"], help="GRPO: reward functions, NAME[=WEIGHT] each: "
                               "exact (the final answer against the record's answer), format (--format_regex), length "
                               "(--length_target), or module.path:function, a function (prompt, completion, answer) "
                               "-> float", metavar="SPEC")
    format_regex: str = option("", "GRPO: the regular expression the format reward matches a whole completion "
                                   "against; empty: a G1 reasoning reply, <think>...</think> then an answer",
                               metavar="REGEX")
    length_target: int = option(200, "GRPO: the length reward is 1 up to this many characters, falling to 0 at twice "
                                     "as many", minimum=1)
    # logging and resuming
    log: str = option("csv", "where metrics go besides metrics.csv and the progress bar", choices=LOGGERS)
    wandb_project: str = option("rwkv-finetune", "the Weights & Biases project, with --log wandb")
    progress_bar: bool = option(True, "show the progress bar")
    resume: str = option("", "continue a run: latest (its newest checkpoint; an error if none), auto (the "
                             "newest if any), or a checkpoint directory; empty: start fresh",
                         metavar="latest|auto|DIR")
    overwrite: bool = option(False, "start a new run in a --proj_dir that holds an earlier run's files but no "
                                    "checkpoint (a stopped run's train_config.json, metrics.csv, loss.png, a base.pth "
                                    "of another model or seed), replacing them")
    # what was derived, and how (filled by config_from_values), and the --config files read (by parse_args)
    derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    sources: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.peft is not None and self.peft.seed != self.seed:
            self.peft = self.peft.replace(seed=self.seed)          # --seed seeds the adapters too

    @property
    def resolved_accelerator(self) -> str:
        """"cpu" or "gpu": --accelerator, with "auto" meaning a GPU when one is visible."""
        if self.accelerator != "auto":
            return self.accelerator
        import torch
        return "gpu" if torch.cuda.is_available() else "cpu"

    @property
    def quant_scheme(self) -> QuantScheme | None:
        """--quant as a QuantScheme (None: a full-precision base)."""
        if self.quant == "none":
            return None
        return QuantScheme(self.quant, blocksize=self.quant_blocksize, head=self.quant_head)

    @property
    def total_steps(self) -> int:
        return self.epoch_steps * self.epoch_count

    @property
    def save_every(self) -> int:
        return self.epoch_steps * self.epoch_save

    def to_flags(self) -> dict[str, Any]:
        """The configuration as flag names and values: what train_config.json records, and what
        `--config train_config.json` reads back."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if flag_name(f) is not None and f.init:
                out[f.name] = getattr(self, f.name)
        out["peft"] = self.peft.method if self.peft else "none"
        if self.peft:
            for flag, name in PEFT_FLAGS.items():
                if flag != "peft":
                    value = getattr(self.peft, name)
                    out[flag] = list(value) if isinstance(value, tuple) else value
        return out

    def to_dict(self) -> dict:
        """to_flags(), plus {"derived": {field: rule}} for the values this configuration derived."""
        return {**self.to_flags(), "derived": dict(self.derived)}
