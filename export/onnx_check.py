"""Validate an ONNX file: `onnx.checker` (when onnx is installed) and an ORT session.

Torch-free, so the runtime can use it; errors become one `ValueError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def check_onnx_file(
    path: str | Path, providers: list[str] | None = None, threads: int | None = None
) -> Any:
    """Check `path` and return an `onnxruntime.InferenceSession` for it.

    Raises `FileNotFoundError` if it is missing and `ValueError` (naming the file) if the
    checker or onnxruntime rejects it (truncated, corrupt, unsupported IR/opset...).
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ONNX file not found")
    try:
        import onnx
    except ImportError:  # the production install has onnxruntime only
        onnx = None
    if onnx is not None:
        try:
            onnx.checker.check_model(str(path), full_check=True)
        except Exception as error:  # DecodeError, ValidationError, InferenceError, ...
            raise ValueError(f"{path}: not a valid ONNX model: {_short(error)}") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(
            str(path), options, providers=providers or ["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise ValueError(f"{path}: onnxruntime cannot load it: {_short(error)}") from None


def _short(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    lines = text.splitlines()
    return lines[0][:500] + (" ..." if len(lines) > 1 or len(lines[0]) > 500 else "")
