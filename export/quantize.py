"""`model.onnx` -> `model.int8.onnx`: onnxruntime's static QDQ quantisation.

Calibrated on normalised images (`export.images`); activations uint8, weights int8 per
channel (the U8S8 layout onnxruntime's x86 kernels, VNNI included, are fastest with).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from export.onnx_export import INPUT_NAME, cap_ir_version


class ArrayReader(CalibrationDataReader):
    """Feeds a list of normalised 1 x 3 x H x W arrays to the calibrator."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self.images = images
        self._iterator: Iterator[np.ndarray] = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._iterator, None)
        return None if image is None else {INPUT_NAME: image}

    def rewind(self) -> None:
        self._iterator = iter(self.images)


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    images: list[np.ndarray],
    *,
    per_channel: bool = True,
    method: str = "minmax",
) -> Path:
    """Static QDQ int8 quantisation of `fp32_path` calibrated on `images`."""
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
        prepared = Path(work) / "prepared.onnx"
        # shape inference + graph optimisation; symbolic shape inference is skipped: it
        # fails on graphs whose sizes are computed from the input (dynamo, HRNet's padding)
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out_path),
            ArrayReader(images),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            calibration_cache_path=None,
        )
    cap_ir_version(out_path)
    return out_path
