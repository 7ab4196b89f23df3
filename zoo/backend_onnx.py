"""The ONNX Runtime backend (`OnnxBackend`) and the execution providers it asks for.

Importing this module does not import ONNX Runtime; constructing a backend does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from zoo.devices import check_device
from zoo.errors import ModelFileError
from zoo.ingraph import PixelGraphs, PixelSpec

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"
GPU_PROVIDERS = (TENSORRT_PROVIDER, CUDA_PROVIDER)
TRT_CACHE_ENV = "CPG_ZOO_TRT_CACHE"


def _trt_cache_dir() -> str:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cpg-zoo" / "trt"
    return str(os.environ.get(TRT_CACHE_ENV, default))


def onnx_providers(device: str) -> list[str | tuple[str, dict[str, Any]]]:
    """Providers to ask ONNX Runtime for: TensorRT -> CUDA -> CPU where compiled in.

    `device="cpu"` gives CPU only. Whether a GPU provider really works is only known once a
    session exists (`session.get_providers()`); ONNX Runtime falls back to the next one.
    """
    import onnxruntime as ort

    if device == "cpu":
        return [CPU_PROVIDER]
    device_id = int(device.split(":")[1]) if ":" in device else 0
    available = ort.get_available_providers()
    providers: list[str | tuple[str, dict[str, Any]]] = []
    if TENSORRT_PROVIDER in available:
        options = {
            "device_id": device_id,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": _trt_cache_dir(),
        }
        providers.append((TENSORRT_PROVIDER, options))
    if CUDA_PROVIDER in available:
        providers.append((CUDA_PROVIDER, {"device_id": device_id}))
    providers.append(CPU_PROVIDER)
    return providers


class OnnxBackend:
    """ONNX Runtime session over one `.onnx` file. `run` is safe to call from many threads
    (ONNX Runtime sessions are)."""

    name = "onnx"

    def __init__(
        self,
        path: str | Path,
        device: str = "auto",
        providers: list[Any] | None = None,
        num_threads: int | None = None,
        pixels: PixelSpec | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        device = check_device(device)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads:
            options.intra_op_num_threads = num_threads
        requested = providers if providers is not None else onnx_providers(device)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=requested)
        except Exception as error:  # ORT raises its own pybind exception types
            raise ModelFileError(
                f"{self.path} is not a usable ONNX model ({type(error).__name__}: "
                f"{str(error).strip()[:500]}). The file may be damaged or truncated: re-export it, "
                "or delete it from the Hugging Face cache and download it again."
            ) from None
        self.providers: list[str] = list(self.session.get_providers())
        self.device = "cuda" if any(p in GPU_PROVIDERS for p in self.providers) else "cpu"
        if device.startswith("cuda") and self.device != "cuda":
            raise RuntimeError(
                f"device={device!r} requested but ONNX Runtime could not use a GPU provider "
                f"(compiled in: {ort.get_available_providers()}, in use: {self.providers}); "
                "install onnxruntime-gpu with matching CUDA libraries, or use device='cpu'"
            )
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelFileError(
                f"{self.path}: expected one NCHW image input, got "
                f"{[(i.name, i.shape) for i in inputs]}"
            )
        self.input_name = inputs[0].name
        self.input_dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        names = [o.name for o in outputs]
        self.output_name = "logits" if "logits" in names else names[0]

        def compile_graph(graph: bytes) -> Callable[[np.ndarray], np.ndarray]:
            session = ort.InferenceSession(graph, options, providers=requested)
            return lambda batch: session.run(None, {"pixels": batch})[0]

        self.pixels = PixelGraphs(self.path, pixels, compile_graph) if pixels else None

    def run(self, batch: np.ndarray) -> np.ndarray:
        feed = {self.input_name: batch.astype(self.input_dtype, copy=False)}
        (logits,) = self.session.run([self.output_name], feed)
        return np.asarray(logits, dtype=np.float32)
