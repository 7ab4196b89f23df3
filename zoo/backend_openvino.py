"""The OpenVINO CPU backend (`OpenVinoBackend`) and the CPU plugin's capabilities.

Importing this module does not import OpenVINO; constructing a backend does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from zoo.devices import check_device
from zoo.errors import ModelFileError
from zoo.ingraph import PixelGraphs, PixelSpec

OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def openvino_capabilities() -> list[str]:
    """The CPU plugin's reported `OPTIMIZATION_CAPABILITIES` (e.g. "BF16", "INT8"), or [] when
    OpenVINO is not installed."""
    try:
        import openvino as ov
    except ImportError:
        return []
    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class OpenVinoBackend:
    """OpenVINO on the CPU, reading the model directory's ONNX file directly (no IR needed).

    `precision`: "fp32" (f32 inference hint), "bf16" (bf16 hint: only where the CPU plugin
    reports BF16), "int8" (the QDQ `model.int8.onnx`, f32 hint for the float parts).
    Graphs are compiled on first use. `run` is thread-safe: each thread gets its own infer
    request.
    """

    name = "openvino"

    def __init__(
        self,
        path: str | Path,
        device: str = "auto",
        precision: str = "fp32",
        num_threads: int | None = None,
        pixels: PixelSpec | None = None,
    ) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise ImportError(
                "backend='openvino' needs OpenVINO: pip install 'cpg-zoo[openvino]'"
            ) from None
        if check_device(device).startswith("cuda"):
            raise ValueError("backend='openvino' runs on the CPU; use device='cpu' or 'auto'")
        if precision not in OPENVINO_HINTS:
            raise ValueError(
                f"backend='openvino' supports precision {', '.join(OPENVINO_HINTS)}, "
                f"got {precision!r}"
            )
        capabilities = openvino_capabilities()
        if precision == "bf16" and "BF16" not in capabilities:
            raise RuntimeError(
                f"precision='bf16' needs a CPU with bf16 support; OpenVINO reports "
                f"{capabilities}: use precision='fp32' or 'int8'"
            )
        self.path = Path(path)
        self._config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": OPENVINO_HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY",
        }
        if num_threads:
            self._config["INFERENCE_NUM_THREADS"] = int(num_threads)
        self._core = ov.Core()
        self._model = self._read(self.path.read_bytes())  # fails here on a damaged file
        self._compiled: Any = None
        self._compile_lock = threading.Lock()
        self.precision = precision
        self.device = "cpu"
        self.providers = [f"OpenVINO:CPU:{OPENVINO_HINTS[precision]}"]
        self.pixels = PixelGraphs(self.path, pixels, self._runner) if pixels else None

    def _read(self, graph: bytes) -> Any:
        try:
            return self._core.read_model(graph)
        except Exception as error:  # OpenVINO raises RuntimeError subclasses of its own
            raise ModelFileError(
                f"{self.path} could not be loaded by OpenVINO ({type(error).__name__}: "
                f"{str(error).strip()[:500]})"
            ) from None

    def _runner(self, graph: bytes | Any) -> Callable[[np.ndarray], np.ndarray]:
        """`run(inputs) -> first output` of `graph` compiled; one infer request per thread."""
        model = self._read(graph) if isinstance(graph, bytes) else graph
        compiled = self._core.compile_model(model, "CPU", self._config)
        names = [output.get_any_name() for output in compiled.outputs]
        index = names.index("logits") if "logits" in names else 0
        local = threading.local()

        def run(inputs: np.ndarray) -> np.ndarray:
            request = getattr(local, "request", None)
            if request is None:
                request = local.request = compiled.create_infer_request()
            request.infer({0: inputs})
            return request.get_output_tensor(index).data.copy()

        return run

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self._compiled is None:
            with self._compile_lock:
                if self._compiled is None:
                    self._compiled = self._runner(self._model)
        return self._compiled(np.ascontiguousarray(batch, dtype=np.float32))
