"""Producers of model directories: checkpoint -> safetensors, ONNX (fp32/int8/fp16), report.

`export_model` needs torch; `check_onnx_file` (in `export.onnx_check`) does not. Names are
imported lazily so `import export` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CheckpointError", "ParityError", "ParityGates", "check_onnx_file", "export_model"]

_WHERE = {
    "export_model": "export.api",
    "ParityError": "export.parity",
    "ParityGates": "export.parity",
    "CheckpointError": "export.checkpoint",
    "check_onnx_file": "export.onnx_check",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
