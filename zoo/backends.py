"""Inference backends behind one small interface, and `BACKENDS`, the table of them.

A backend maps a normalised float32 NCHW batch to float32 NCHW logits at the same height and
width (`run`). ONNX Runtime and OpenVINO also run the image as decoded (`backend.pixels.run`:
uint8 NHWC in; logits, class ids or probabilities out), with pre- and post-processing
composed into the graph at load time (`zoo.ingraph`). Importing this module imports no
inference library.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from zoo import ingraph
from zoo.errors import ModelFileError
from zoo.ingraph import PixelGraphs, PixelSpec
from zoo.modelfiles import ONNX_FP16_NAME, ONNX_INT8_NAME, ONNX_NAME, WEIGHTS_NAME

if TYPE_CHECKING:
    from zoo.config import ModelConfig

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"
GPU_PROVIDERS = (TENSORRT_PROVIDER, CUDA_PROVIDER)
DEVICES = ("auto", "cpu", "cuda")
TRT_CACHE_ENV = "CPG_ZOO_TRT_CACHE"


class Backend(Protocol):
    """What `Segmenter` needs from a backend."""

    name: str  # its row in `BACKENDS`: "onnx", "openvino" or "torch"
    device: str  # "cpu" or "cuda" (what is actually used)
    providers: list[str]  # ORT providers in use, ["OpenVINO:CPU:<hint>"] or ["torch:<device>"]
    pixels: PixelGraphs | None  # uint8 images in, logits/ids/probs out (None: `run` only)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 3, H, W) normalised input -> float32 (N, C, H, W) logits."""
        ...


def check_device(device: str) -> str:
    """Validate a device string: "auto", "cpu", "cuda" or "cuda:N"."""
    if device in DEVICES or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")


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


class TorchBackend:
    """A `zoo.models` network with safetensors weights (imports torch on construction)."""

    name = "torch"
    pixels: PixelGraphs | None = None  # no in-graph processing: `Segmenter` normalises in numpy

    def __init__(
        self,
        weights: str | Path,
        config: ModelConfig,
        device: str = "auto",
        precision: str = "fp32",
    ) -> None:
        try:
            import torch
            from safetensors.torch import load_file

            from zoo.models import build_model
        except ImportError as error:
            raise ImportError(
                f"backend='torch' needs torch ({error}); `pip install cpg-zoo[torch]`, or use "
                "backend='onnx'"
            ) from None

        self.path = Path(weights)
        device = check_device(device)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} requested but torch sees no CUDA device")
        if precision == "int8":
            raise ValueError("precision='int8' is only available with backend='onnx'")
        if precision == "fp16" and not device.startswith("cuda"):
            raise ValueError("precision='fp16' with backend='torch' needs a CUDA device")
        self.torch = torch
        dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        self.dtype = dtypes[precision]
        self.device = "cuda" if device.startswith("cuda") else "cpu"
        self._torch_device = torch.device(device)
        self.providers = [f"torch:{device}"]

        try:
            state = load_file(str(self.path))
        except Exception as error:
            raise ModelFileError(
                f"{self.path} is not a readable safetensors file ({error}); re-export or "
                "download it again"
            ) from None
        model = build_model(config.arch, config.num_classes, aux_loss=False)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelFileError(
                f"{self.path} does not match {config.arch} with {config.num_classes} classes: "
                f"{str(error)[:500]}"
            ) from None
        self.model = model.eval().to(self._torch_device, self.dtype)

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).to(self._torch_device, self.dtype)
            logits = self.model(inputs)["out"]
            return logits.float().cpu().numpy()


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


def warn_fp16_on_cpu(backend: Backend) -> None:
    """fp16 ONNX models on the CPU provider are slower than fp32 (Cast nodes everywhere)."""
    if backend.device == "cpu":
        warnings.warn(
            "precision='fp16' is running on the CPU, where it is slower than fp32; "
            "fp16 is meant for GPUs",
            stacklevel=3,
        )


# ---------------------------------------------------------------- the table of backends
@dataclass(frozen=True)
class BackendRow:
    """One inference backend: what `zoo.load`, the CLI's `--backend` and the benchmarks know."""

    name: str  # the `backend=` value
    title: str  # for people
    module: str  # the import that must be installed
    extra: str | None  # `pip install cpg-zoo[<extra>]` that provides it (None: the base install)
    files: dict[str, str]  # precision -> the model-directory file it loads
    devices: tuple[str, ...]  # where it can run
    loader: Callable[..., Backend]  # (path, config, device, precision, providers, threads)

    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(self.files)

    def installed(self) -> bool:
        """Whether its inference library can be imported (without importing it)."""
        return importlib.util.find_spec(self.module) is not None

    def install_hint(self) -> str:
        return f"pip install 'cpg-zoo[{self.extra}]'" if self.extra else "pip install cpg-zoo"


def _pixel_spec(config: ModelConfig, path: Path) -> PixelSpec | None:
    """In-graph pre/post-processing where `zoo.ingraph` can wrap the file (it needs `onnx`, a
    base dependency, and opset >= 13); otherwise `Segmenter` does it in numpy."""
    if not ingraph.supported(path):
        return None
    return PixelSpec(tuple(config.mean), tuple(config.std), config.num_classes)


def _load_onnx(
    path: Path,
    config: ModelConfig,
    device: str,
    precision: str,
    providers: list[Any] | None,
    num_threads: int | None,
) -> Backend:
    engine = OnnxBackend(path, device, providers, num_threads, pixels=_pixel_spec(config, path))
    if precision == "fp16":
        warn_fp16_on_cpu(engine)
    return engine


def _load_torch(
    path: Path,
    config: ModelConfig,
    device: str,
    precision: str,
    providers: list[Any] | None,
    num_threads: int | None,
) -> Backend:
    return TorchBackend(path, config, device, precision)


def _load_openvino(
    path: Path,
    config: ModelConfig,
    device: str,
    precision: str,
    providers: list[Any] | None,
    num_threads: int | None,
) -> Backend:
    return OpenVinoBackend(path, device, precision, num_threads, pixels=_pixel_spec(config, path))


BACKENDS: dict[str, BackendRow] = {
    row.name: row
    for row in (
        BackendRow(
            "onnx",
            "ONNX Runtime",
            "onnxruntime",
            None,
            {"fp32": ONNX_NAME, "int8": ONNX_INT8_NAME, "fp16": ONNX_FP16_NAME},
            ("cpu", "cuda"),
            _load_onnx,
        ),
        BackendRow(
            "openvino",
            "OpenVINO (CPU)",
            "openvino",
            "openvino",
            {"fp32": ONNX_NAME, "bf16": ONNX_NAME, "int8": ONNX_INT8_NAME},
            ("cpu",),
            _load_openvino,
        ),
        BackendRow(
            "torch",
            "PyTorch eager",
            "torch",
            "torch",
            {"fp32": WEIGHTS_NAME, "fp16": WEIGHTS_NAME, "bf16": WEIGHTS_NAME},
            ("cpu", "cuda"),
            _load_torch,
        ),
    )
}
BACKEND_CHOICES = ("auto", *BACKENDS)  # `backend=` values (the CLI's --backend)
PRECISIONS = tuple(dict.fromkeys(p for row in BACKENDS.values() for p in row.precisions))
PRECISION_CHOICES = ("auto", *PRECISIONS)
