"""`model.onnx` -> `model.fp16.onnx` for GPUs (onnxruntime's float16 converter).

Inputs and outputs stay float32 (`keep_io_types`), so callers feed the same arrays; on the
CPU execution provider this model is slower than fp32 (Casts everywhere): it is for CUDA.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
from onnxruntime.transformers.onnx_model import OnnxModel

from export.onnx_export import MAX_IR_VERSION

# kept in fp32 besides onnxruntime's defaults: softmax (HRNet-OCR's runs over all pixels)
FP32_OPS = [*DEFAULT_OP_BLOCK_LIST, "Softmax"]


def convert_fp16(fp32_path: str | Path, out_path: str | Path) -> Path:
    """Convert weights and activations to float16, keeping float32 I/O."""
    model = onnx.load(str(fp32_path))
    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=FP32_OPS)
    OnnxModel(converted).topological_sort()  # the I/O Casts are appended after their users
    converted.ir_version = min(converted.ir_version, MAX_IR_VERSION)
    onnx.save(converted, str(out_path))
    return Path(out_path)
