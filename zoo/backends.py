"""Inference backends behind one small interface, and `BACKENDS`, the table of them.

A backend maps a normalised float32 NCHW batch to float32 NCHW logits at the same height and
width (`run`). ONNX Runtime and OpenVINO also run the image as decoded (`backend.pixels.run`:
uint8 NHWC in; logits, class ids or probabilities out), with pre- and post-processing
composed into the graph at load time (`zoo.ingraph`). Each backend class lives in its own
module (`zoo.backend_onnx`, `zoo.backend_openvino`, `zoo.backend_torch`); this table is the one
place that lists them. Importing this module imports no inference library.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from zoo import ingraph
from zoo.backend_onnx import OnnxBackend
from zoo.backend_openvino import OpenVinoBackend
from zoo.backend_torch import TorchBackend
from zoo.ingraph import PixelGraphs, PixelSpec
from zoo.modelfiles import ONNX_FP16_NAME, ONNX_INT8_NAME, ONNX_NAME, WEIGHTS_NAME

if TYPE_CHECKING:
    from zoo.config import ModelConfig


class Backend(Protocol):
    """What `Segmenter` needs from a backend."""

    name: str  # its row in `BACKENDS`: "onnx", "openvino" or "torch"
    device: str  # "cpu" or "cuda" (what is actually used)
    providers: list[str]  # ORT providers in use, ["OpenVINO:CPU:<hint>"] or ["torch:<device>"]
    pixels: PixelGraphs | None  # uint8 images in, logits/ids/probs out (None: `run` only)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 3, H, W) normalised input -> float32 (N, C, H, W) logits."""
        ...


def warn_fp16_on_cpu(backend: Backend) -> None:
    """fp16 ONNX models on the CPU provider are slower than fp32 (Cast nodes everywhere)."""
    if backend.device == "cpu":
        warnings.warn(
            "precision='fp16' is running on the CPU, where it is slower than fp32; "
            "fp16 is meant for GPUs",
            stacklevel=3,
        )


@dataclass(frozen=True)
class LoadRequest:
    """What `zoo.load` asks of a backend row's loader: the file, and how to run it."""

    path: Path  # the model-directory file of the row's `files[precision]`
    config: ModelConfig
    device: str
    precision: str
    providers: list[Any] | None = None  # ONNX Runtime only: overrides `onnx_providers(device)`
    num_threads: int | None = None  # ONNX Runtime and OpenVINO

    def pixel_spec(self) -> PixelSpec | None:
        """In-graph pre/post-processing where `zoo.ingraph` can wrap the file (it needs `onnx`, a
        base dependency, and opset >= 13); otherwise `Segmenter` does it in numpy."""
        if not ingraph.supported(self.path):
            return None
        return PixelSpec(tuple(self.config.mean), tuple(self.config.std), self.config.num_classes)


@dataclass(frozen=True)
class BackendRow:
    """One inference backend: what `zoo.load`, the CLI's `--backend` and the benchmarks know."""

    name: str  # the `backend=` value
    title: str  # for people
    module: str  # the import that must be installed
    extra: str | None  # `pip install cpg-zoo[<extra>]` that provides it (None: the base install)
    files: dict[str, str]  # precision -> the model-directory file it loads
    devices: tuple[str, ...]  # where it can run
    loader: Callable[[LoadRequest], Backend]

    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(self.files)

    def installed(self) -> bool:
        """Whether its inference library can be imported (without importing it)."""
        return importlib.util.find_spec(self.module) is not None

    def install_hint(self) -> str:
        return f"pip install 'cpg-zoo[{self.extra}]'" if self.extra else "pip install cpg-zoo"


def _load_onnx(request: LoadRequest) -> Backend:
    engine = OnnxBackend(
        request.path,
        request.device,
        request.providers,
        request.num_threads,
        pixels=request.pixel_spec(),
    )
    if request.precision == "fp16":
        warn_fp16_on_cpu(engine)
    return engine


def _load_openvino(request: LoadRequest) -> Backend:
    return OpenVinoBackend(
        request.path,
        request.device,
        request.precision,
        request.num_threads,
        pixels=request.pixel_spec(),
    )


def _load_torch(request: LoadRequest) -> Backend:
    return TorchBackend(request.path, request.config, request.device, request.precision)


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
