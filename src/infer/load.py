"""A model ready to run: a base .pth, optionally an adapter (applied, not merged into the file) and a
state file; on the GPU in bf16 when there is one, on the CPU in fp32 otherwise."""

from __future__ import annotations

from pathlib import Path

import torch

from ..model import RWKVState, load_model
from ..peft import adapter_layers, load_adapter, read_any_adapter
from ..peft.rwkv_peft import RWKV_PEFT_METHODS
from ..quant import QuantScheme
from ..quant.backend import bnb_functional


def inference_device(device: str | None = None) -> tuple[str, torch.dtype]:
    """(device, dtype): the given device, or cuda when available; bf16 on a GPU, fp32 on a CPU."""
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is visible on this machine")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda[:N], got {device!r}")
    return device, (torch.bfloat16 if device.startswith("cuda") else torch.float32)


@torch.no_grad()
def load_for_inference(model_path: str | Path, adapter: str | Path | None = None, state: str | Path | None = None,
                       device: str | None = None, method: str | None = None, lora_alpha: float | None = None,
                       pissa_init: str | Path | None = None,
                       quant: QuantScheme | None = None) -> tuple[torch.nn.Module, RWKVState | None]:
    """(model in eval mode, its starting state or None). An adapter's layers are merged in place for
    speed (W + ΔW in fp32, as merge.py computes it); an adapter that tuned the initial states keeps
    them (the model starts from them) unless `state` gives another start. `quant`: the base's linear
    layers held quantised (quantised on the device, while loading); an adapter runs beside them unmerged."""
    device, dtype = inference_device(device)
    if not Path(model_path).is_file():
        raise FileNotFoundError(f"--model {model_path} does not exist" + (" (it is a directory: give the .pth)"
                                                                          if Path(model_path).is_dir() else ""))
    if quant is not None:
        bnb_functional(device)                                   # before any weight is loaded
        model = load_model(model_path, dtype=dtype, device=device, quant=quant)
    else:
        model = load_model(model_path, dtype=torch.float32)      # any family; merged in fp32, then cast
    if adapter is not None:
        load_adapter(model, read_any_adapter(adapter, method, lora_alpha=lora_alpha, pissa_init=pissa_init,
                                             method_flags="--method " + "|".join(RWKV_PEFT_METHODS)))
        if quant is None:
            for layer in adapter_layers(model).values():
                layer.merge()
    model = model.to(device=device, dtype=dtype).eval()
    start = None
    if state is not None:
        start = RWKVState.from_file(state, model.config, dtype=dtype, device=device)
    return model, start
