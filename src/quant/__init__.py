"""A quantised frozen base (QLoRA's way): nf4, fp4 or int8 weights through bitsandbytes.

    scheme.py   QuantScheme: the type, block size and head choice; shape checks; exact bytes
    backend.py  bitsandbytes, imported only when asked for, checked on the device
    weight.py   QuantizedWeight (codes + scales, row-range dequantisation) and the product x Ŵ^T
    linear.py   QuantLinear, quantize_model, which layers, what an adapter records
"""

from .linear import (QuantLinear, check_quantizable, is_linear, linears_to_quantize,
                     quant_record, quantize_model, quantized_modules, quantized_tensor_names)
from .scheme import BLOCKSIZES, QUANT_TYPES, QuantScheme
from .weight import QuantizedWeight, quantized_linear

__all__ = ["QuantScheme", "QUANT_TYPES", "BLOCKSIZES", "QuantizedWeight", "quantized_linear", "QuantLinear",
           "quantize_model", "quantized_modules", "quantized_tensor_names", "is_linear",
           "check_quantizable", "linears_to_quantize", "quant_record"]
