"""`model.onnx` -> `model.int8.onnx`: onnxruntime's static QDQ quantisation.

Calibrated on normalised images (`export.images`); activations uint8, weights int8 per
channel (the U8S8 layout onnxruntime's x86 kernels, VNNI included, are fastest with).
Graph outputs stay float (the nodes writing them are not quantised), hard-swish is
rewritten into ops with uint8 kernels and shapes are read before dequantisation
(`export.qdq_rewrite`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from export.onnx_export import INPUT_NAME, MAX_IR_VERSION
from export.qdq_rewrite import (
    decompose_hardswish,
    float_output_tail,
    fold_hardswish_scales,
    shapes_before_dequantize,
)
from export.steps import Progress


class ArrayReader(CalibrationDataReader):
    """Feeds a list of normalised 1 x 3 x H x W arrays to the calibrator."""

    def __init__(self, images: list[np.ndarray], progress: Progress | None = None) -> None:
        self.images = images
        self.progress = progress
        self._iterator: Iterator[tuple[int, np.ndarray]] = enumerate(images, 1)

    def get_next(self) -> dict[str, np.ndarray] | None:
        index, image = next(self._iterator, (0, None))
        if image is None:
            return None
        if self.progress is not None:
            self.progress(f"int8 calibration: image {index} of {len(self.images)}")
        return {INPUT_NAME: image}

    def rewind(self) -> None:
        self._iterator = enumerate(self.images, 1)


@dataclass
class QuantizeReport:
    """What `quantize_int8` did to the graph besides quantising it."""

    path: Path
    float_tail: list[str]  # nodes at the graph's outputs, left unquantised
    hardswish_rewritten: int
    hardswish_scales_folded: int
    shapes_read_before_dequantize: int  # Shape ops moved off a DequantizeLinear

    def to_dict(self) -> dict[str, object]:
        return {
            "float_tail": self.float_tail,
            "hardswish_rewritten": self.hardswish_rewritten,
            "hardswish_scales_folded": self.hardswish_scales_folded,
            "shapes_read_before_dequantize": self.shapes_read_before_dequantize,
        }


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    images: list[np.ndarray],
    *,
    per_channel: bool = True,
    method: str = "minmax",
    progress: Progress | None = None,
) -> QuantizeReport:
    """Static QDQ int8 quantisation of `fp32_path` calibrated on `images` (`progress` gets a
    line per calibration image)."""
    if not images:
        raise ValueError("int8 quantisation needs at least one calibration image")
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if method not in methods:
        raise ValueError(f"calibration method must be one of {', '.join(methods)}, got {method!r}")
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".quant-") as work:
        rewritten, prepared, quantized = (Path(work) / f"{n}.onnx" for n in ("rw", "prep", "q"))
        model = onnx.load(str(fp32_path))
        hardswish = decompose_hardswish(model)
        onnx.save(model, str(rewritten))
        # shape inference + graph optimisation; symbolic shape inference is skipped: it
        # fails on graphs whose sizes are computed from the input (dynamo, HRNet's padding)
        quant_pre_process(str(rewritten), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        float_tail = float_output_tail(model)  # names unnamed nodes too
        onnx.save(model, str(prepared))
        quantize_static(
            str(prepared),
            str(quantized),
            ArrayReader(images, progress),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            calibration_cache_path=None,
            nodes_to_exclude=float_tail,
        )
        model = onnx.load(str(quantized))
        folded = fold_hardswish_scales(model)
        shapes = shapes_before_dequantize(model)
        model.ir_version = min(model.ir_version, MAX_IR_VERSION)
        onnx.save(model, str(out_path))
    return QuantizeReport(out_path, float_tail, hardswish, folded, shapes)
