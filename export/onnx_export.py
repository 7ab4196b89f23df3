"""torch network -> `model.onnx` (fp32, named dynamic batch/height/width axes).

Exporter choice: torch's TorchScript-based exporter (`dynamo=False`). It exports all three
architectures with dynamic shapes and in well under a second for LRASPP; the dynamo exporter
(torch.export) fails on HRNetV2-OCR ("Invalid ranges [2:1]" from the pad-to-32 arithmetic with
symbolic sizes) and is ~20x slower. Both write IR <= 10, which onnxruntime(-gpu) >= 1.18 reads.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Literal

import onnx
import torch
from torch import nn

Head = Literal["logits", "probs", "argmax"]
HEADS: tuple[str, ...] = ("logits", "probs", "argmax")
INPUT_NAME = "input"
LOGITS_NAME = "logits"
EXTRA_OUTPUT = {"probs": "probs", "argmax": "labels"}  # head -> name of the extra output
DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}
MAX_IR_VERSION = 10  # onnxruntime-gpu 1.31 rejects IR > 13; the torch exporters write 8/10
MIN_OPSET = 17
# the newest opset the installed torch exports (torch raises "Unsupported onnx_opset_version")
MAX_OPSET: int = getattr(torch.onnx._constants, "ONNX_MAX_OPSET", 20)


def check_opset(opset: int) -> int:
    """`opset` if this torch can export it and the graph needs no older one, else ValueError."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(
            f"opset must be between {MIN_OPSET} and {MAX_OPSET} (the newest this torch "
            f"{torch.__version__} exports), got {opset}"
        )
    return opset


class ExportWrapper(nn.Module):
    """`{"out": logits}` network -> `logits` (+ `probs` softmax or `labels` argmax)."""

    def __init__(self, model: nn.Module, head: Head = "logits") -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        self.model = model
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)["out"]
        if self.head == "probs":
            return logits, logits.softmax(dim=1)
        if self.head == "argmax":
            return logits, logits.argmax(dim=1)
        return logits


def output_names(head: Head) -> list[str]:
    """Graph output names for `head`: always `logits`, plus `probs` or `labels`."""
    return [LOGITS_NAME] + ([EXTRA_OUTPUT[head]] if head in EXTRA_OUTPUT else [])


def export_onnx(
    model: nn.Module,
    path: str | Path,
    num_classes: int,
    *,
    head: Head = "logits",
    opset: int = 18,
    sample_size: tuple[int, int] = (128, 160),
) -> Path:
    """Export eval-mode `model` to `path`; input `input` N x 3 x H x W float32 (normalised)."""
    check_opset(opset)
    path = Path(path)
    wrapper = ExportWrapper(model, head).eval()
    names = output_names(head)
    axes = {INPUT_NAME: DYNAMIC_AXES, LOGITS_NAME: DYNAMIC_AXES}
    if head == "probs":
        axes["probs"] = DYNAMIC_AXES
    elif head == "argmax":
        axes["labels"] = {0: "batch", 1: "height", 2: "width"}
    sample = torch.zeros(1, 3, *sample_size)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # deprecation + tracer warnings about shape arithmetic
        torch.onnx.export(
            wrapper,
            (sample,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    _fix_output_shapes(path, num_classes)
    return path


def _fix_output_shapes(path: Path, num_classes: int) -> None:
    """Pin the class dimension (the tracer names it e.g. `Slicelogits_dim_1`); cap IR."""
    model = onnx.load(str(path))
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if output.name in (LOGITS_NAME, "probs") and len(dims) == 4:
            dims[1].Clear()
            dims[1].dim_value = num_classes
    model.ir_version = min(model.ir_version, MAX_IR_VERSION)
    onnx.save(model, str(path))


def dynamic_dims(path: str | Path) -> dict[str, list[str | int]]:
    """Each graph input's / output's dims (names for dynamic ones), for the report."""
    model = onnx.load(str(path), load_external_data=False)
    return {
        value.name: [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]
        for value in list(model.graph.input) + list(model.graph.output)
    }
