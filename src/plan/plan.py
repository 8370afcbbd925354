"""The memory plan of a training run: each component's bytes per GPU, their sum, and whether it fits.

    planner = Planner()                                   # holds the traced models between estimates
    plan = planner.estimate(PlanRequest(model="rwkv7-13.3b", peft="bone", rank=64, quant="nf4"))
    plan.peak_bytes, plan.fits, plan.components           # {"frozen_weights": ..., "activations": ...}
    print(plan.summary_line())

Components (docs/memory.md gives the formulas and where each number comes from):

    frozen_weights   the base (quantised linears as QuantScheme.weight_bytes, the rest in the model dtype)
    trainable        the adapters (fp32) and other trainable tensors          } as the ZeRO stage
    gradients        one per trainable value, in its dtype                    } places them (zero.py)
    optimizer        fp32 master copy + AdamW's two moments: 12 bytes a value }
    activations      kept for the backward, plus the backward's working set (activations.py)
    head             logits, log-probabilities and their gradients (head.py)
    workspace        the WKV kernel's backward buffers (kernels.py), ZeRO's gradient buckets, with a
                     quantised base one dequantised linear weight in the compute dtype
    overhead         the CUDA context and the caching allocator's fragmentation:
                     CUDA_CONTEXT + FRAGMENTATION x the rest

peak_bytes is their sum: the head's and the activations' peaks are added although, with grad_cp,
they come one after the other (a margin of one block's activations).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .activations import ActivationModel
from .head import HeadModel
from .kernels import BF16
from .request import PlanRequest
from .shapes import TensorBytes, meta_model, model_config, tensor_bytes
from .zero import ZeroLayout

GIB = 2 ** 30
MIB = 2 ** 20
CUDA_CONTEXT = 500 * MIB          # the CUDA context, cuBLAS's workspace and the kernels' code (typical for torch 2.x)
FRAGMENTATION = 0.05              # the caching allocator's reserve beyond what tensors occupy
COMPONENTS = ("frozen_weights", "trainable", "gradients", "optimizer", "activations", "head", "workspace",
              "overhead")
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass
class Plan:
    request: PlanRequest
    components: dict[str, int]
    model_title: str
    notes: list[str] = field(default_factory=list)
    max_ctx_len: int | None = None           # search.py fills these
    max_micro_bsz: int | None = None
    suggestion: str | None = None

    @property
    def peak_bytes(self) -> int:
        return sum(self.components.values())

    @property
    def budget_bytes(self) -> int:
        return int(self.request.gpu_mem * GIB)

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.budget_bytes

    def summary_line(self) -> str:
        """One line: the estimated peak per GPU, its three largest parts, whether it fits."""
        top = sorted(self.components.items(), key=lambda kv: -kv[1])[:3]
        parts = ", ".join(f"{name} {value / GIB:.1f}" for name, value in top)
        verdict = "fits" if self.fits else "does NOT fit"
        return (f"memory plan: estimated peak {self.peak_bytes / GIB:.1f} GiB per GPU ({parts} GiB); "
                f"{verdict} in {self.request.gpu_mem:g} GiB")

    def to_dict(self) -> dict:
        r = self.request
        request = {k: v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for k, v in vars(r).items()}
        return {"model": request["model"], "family": self.model_title, "request": request,
                "peak_bytes": self.peak_bytes, "gpu_mem_bytes": self.budget_bytes, "fits": self.fits,
                "components": dict(self.components), "max_ctx_len": self.max_ctx_len,
                "max_micro_bsz": self.max_micro_bsz, "suggestion": self.suggestion, "notes": list(self.notes)}

    def text(self) -> str:
        """The human-readable report."""
        r = self.request
        lines = [f"{r.model} ({self.model_title}), {r.peft}{'' if r.peft in ('state', 'none') else f' r{r.rank}'}, "
                 f"ctx_len {r.ctx_len}, micro_bsz {r.micro_bsz}, {r.precision}, quant {r.quant}, {r.strategy} on "
                 f"{r.gpus} GPU(s), grad_cp {int(r.grad_cp)}, chunk_ctx {r.chunk_ctx}, head_chunk {r.head_chunk}",
                 "", "estimated peak per GPU (an estimate, not a measurement):"]
        for name in COMPONENTS:
            lines.append(f"  {name:<15} {self.components[name] / MIB:>10,.0f} MiB")
        lines.append(f"  {'total':<15} {self.peak_bytes / MIB:>10,.0f} MiB = {self.peak_bytes / GIB:.2f} GiB")
        lines.append(f"{'fits' if self.fits else 'does NOT fit'} in {r.gpu_mem:g} GiB")
        if self.max_ctx_len is not None:
            lines.append(f"largest ctx_len that fits (micro_bsz {r.micro_bsz}): {self.max_ctx_len or 'none'}")
        if self.max_micro_bsz is not None:
            lines.append(f"largest micro_bsz that fits (ctx_len {r.ctx_len}): {self.max_micro_bsz or 'none'}")
        if self.suggestion:
            lines.append(f"to fit: {self.suggestion}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


class Planner:
    """Estimates plans, keeping each model's traces (activations.py, head.py) for the next estimate."""

    def __init__(self) -> None:
        self.configs: dict[str, object] = {}
        self.models: dict[tuple, tuple[TensorBytes, ActivationModel, HeadModel]] = {}
        self.traces: dict[tuple, tuple[ActivationModel, HeadModel]] = {}

    def config(self, spec):
        """--model's config; an RWKVConfig given from Python is taken as it is."""
        if not isinstance(spec, str):
            return spec
        if spec not in self.configs:
            self.configs[spec] = model_config(spec)
        return self.configs[spec]

    def _parts(self, r: PlanRequest):
        """(tensor bytes, activation model, head model) of a request; the traces do not depend on quantisation."""
        peft, dtype = r.peft_config(), DTYPES[r.precision]
        traced = (r.model, peft, r.precision)
        key = (*traced, r.quant, r.quant_blocksize, bool(r.quant_head))
        if key not in self.models:
            config = self.config(r.model)
            model = meta_model(config, peft, dtype)
            scheme = r.quant_scheme()
            if scheme is not None:
                for name, module in model.named_modules():
                    if hasattr(module, "in_features") and scheme.quantizes(name):
                        scheme.check_shape(name, module.out_features, module.in_features)
            if traced not in self.traces:
                self.traces[traced] = (ActivationModel(config, peft, dtype, kernel=r.precision == "bf16"),
                                       HeadModel(config, dtype))
            self.models[key] = (tensor_bytes(model, scheme), *self.traces[traced])
        return self.models[key]

    def estimate(self, r: PlanRequest) -> Plan:
        """The plan of one request (no search: see search.py for max_ctx_len and a suggestion)."""
        tensors, acts, head = self._parts(r)
        config = acts.config
        zero = ZeroLayout(r.strategy, r.gpus)
        B = r.micro_bsz
        piece = r.chunk_ctx if r.chunk_ctx and r.chunk_ctx < r.ctx_len else r.ctx_len      # tokens one forward sees
        workspace = zero.workspace(tensors.trainable_dtypes, tensors.largest_block)
        if acts.kernel:
            workspace += acts.record.backward_bytes(config, B, piece, acts.n_inputs(B, piece))
        if r.quant != "none":
            out_features, in_features = tensors.largest_linear
            workspace += out_features * in_features * (BF16 if r.precision == "bf16" else 4)
        components = {
            "frozen_weights": zero.frozen(tensors.frozen),
            "trainable": zero.trainable(tensors.trainable),
            "gradients": zero.gradients(tensors.trainable),
            "optimizer": zero.optimizer(tensors.trainable_count),
            "activations": acts.peak(B, r.ctx_len, r.grad_cp, r.chunk_ctx),
            "head": head.peak(B * piece, r.head_chunk),
            "workspace": workspace,
        }
        components["overhead"] = CUDA_CONTEXT + int(FRAGMENTATION * sum(components.values()))
        notes = []
        if r.strategy.startswith("deepspeed_stage_3") and r.quant != "none":
            notes.append("ZeRO-3 partitions parameters; a bitsandbytes-quantised base is normally kept whole "
                         "(use stage 1 or 2 with --quant)")
        return Plan(r, components, acts.family.title, notes)
