"""The PyTorch eager backend (`TorchBackend`): a `zoo.models` network with safetensors weights.

Importing this module does not import torch; constructing a backend does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.devices import check_device
from zoo.errors import ModelFileError
from zoo.ingraph import PixelGraphs
from zoo.modelfiles import ONNX_FP16_NAME

if TYPE_CHECKING:
    from zoo.config import ModelConfig


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
            onnx_fp16 = Path(weights).parent / ONNX_FP16_NAME
            instead = (
                f"backend='onnx' runs its {ONNX_FP16_NAME}"
                if onnx_fp16.is_file()
                else f"this model directory has no {ONNX_FP16_NAME} for ONNX Runtime "
                "(zoo export --fp16 writes one)"
            )
            raise ValueError(
                f"precision='fp16' with torch needs a CUDA device; {instead}; on a CPU "
                "precision='bf16' or 'fp32' run with torch"
            )
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
