"""Parity gates: torch vs ONNX Runtime fp32, and ORT int8 vs ORT fp32.

Every figure goes into the export report; a failed gate raises `ParityError` carrying them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from export.images import CalibrationSet, synthetic_images
from export.onnx_export import INPUT_NAME, LOGITS_NAME
from export.steps import Progress
from training.metrics import ConfusionMatrix

# batch 1 at a moderate size, an odd size (not a multiple of 8/32), and batch 2
DEFAULT_SHAPES: tuple[tuple[int, int, int, int], ...] = (
    (1, 3, 256, 512),
    (1, 3, 193, 257),
    (2, 3, 128, 160),
)

INT8_MIN_AGREEMENT = 0.98  # the int8 gate unless told (--int8-min-agreement)


class ParityError(RuntimeError):
    """An exported model disagrees with its reference beyond the gate; `.figures` has why."""

    def __init__(self, message: str, figures: dict[str, Any]) -> None:
        super().__init__(message)
        self.figures = figures


@dataclass
class ParityGates:
    """Gate thresholds (agreements are fractions of pixels)."""

    fp32_max_abs_diff: float = 1e-3
    # over pixels whose torch top-2 logit margin exceeds 2 * fp32_max_abs_diff: elsewhere a
    # within-tolerance difference may legitimately flip the argmax (the raw figure is reported)
    fp32_min_agreement: float = 0.9999
    int8_min_agreement: float = INT8_MIN_AGREEMENT
    # count int8 agreement only where the fp32 top-2 margin exceeds this (0: every pixel)
    int8_margin: float = 0.0
    int8_max_miou_drop: float | None = None  # absolute mIoU drop (0..1); None: report only

    def __post_init__(self) -> None:
        """ValueError naming a threshold that no export could meet or that means nothing."""
        fractions = {
            "fp32_min_agreement": self.fp32_min_agreement,
            "int8_min_agreement (--int8-min-agreement)": self.int8_min_agreement,
            "int8_max_miou_drop (--int8-max-miou-drop)": self.int8_max_miou_drop,
        }
        for name, value in fractions.items():
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a fraction in [0, 1] (0.98 for 98%), got {value}")
        for name, value in {
            "fp32_max_abs_diff (--max-diff)": self.fp32_max_abs_diff,
            "int8_margin": self.int8_margin,
        }.items():
            if not 0.0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_shapes(shapes: tuple[tuple[int, int, int, int], ...]) -> None:
    """ValueError unless there is a shape and each is N x 3 x H x W with N, H, W >= 1."""
    if not shapes:
        raise ValueError("the parity gates need at least one input shape")
    for shape in shapes:
        if len(shape) != 4 or shape[1] != 3 or min(shape) < 1:
            text = "x".join(map(str, shape))
            raise ValueError(f"parity shape must be N x 3 x H x W with N, H, W >= 1, got {text}")


def gate_inputs(
    shapes: tuple[tuple[int, int, int, int], ...],
    mean: list[float],
    std: list[float],
    calibration: CalibrationSet | None = None,
    seed: int = 0,
) -> list[np.ndarray]:
    """One normalised batch per shape: calibration images resized, else smooth synthetic ones."""
    check_shapes(shapes)
    batches = []
    for index, shape in enumerate(shapes):
        if calibration is None:
            batches.append(synthetic_images(shape, mean, std, seed=seed + index))
            continue
        picks = [
            calibration.images[(index * shape[0] + i) % len(calibration.images)]
            for i in range(shape[0])
        ]
        resized = F.interpolate(
            torch.from_numpy(np.concatenate(picks)), size=shape[2:], mode="bilinear"
        )
        batches.append(np.ascontiguousarray(resized.numpy()))
    return batches


def torch_logits(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The eval-mode network's logits for a normalised batch."""
    with torch.inference_mode():
        return model(torch.from_numpy(x))["out"].numpy()


def ort_outputs(session: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """All outputs of an ORT session, by name."""
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {INPUT_NAME: x}), strict=True))


def top2_margin(logits: np.ndarray) -> np.ndarray:
    """Per pixel: best minus second-best logit (N x H x W)."""
    top2 = np.partition(logits, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def _shape_text(x: np.ndarray) -> str:
    return "x".join(map(str, x.shape))


def fp32_parity(
    model: nn.Module,
    session: Any,
    inputs: list[np.ndarray],
    gates: ParityGates,
    head: str = "logits",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Compare torch and ORT fp32 on each input; raise `ParityError` if a gate fails.
    `progress` gets a line per input ("fp32 parity: shape k of n (NxCxHxW)")."""
    cases, failures = [], []
    for index, x in enumerate(inputs, 1):
        if progress is not None:
            progress(f"fp32 parity: shape {index} of {len(inputs)} ({_shape_text(x)})")
        reference = torch_logits(model, x)
        outputs = ort_outputs(session, x)
        logits = outputs[LOGITS_NAME]
        if logits.shape != reference.shape:
            raise ParityError(
                f"ONNX output shape {logits.shape} != torch {reference.shape} for input {x.shape}",
                {"input_shape": list(x.shape)},
            )
        diff = float(np.abs(logits - reference).max())
        same = logits.argmax(1) == reference.argmax(1)
        decisive = top2_margin(reference) > 2 * gates.fp32_max_abs_diff
        case = {
            "input_shape": list(x.shape),
            "output_shape": list(logits.shape),
            "max_abs_diff": diff,
            "max_abs_logit": float(np.abs(reference).max()),
            "argmax_agreement": float(same.mean()),
            "decisive_fraction": float(decisive.mean()),
            "argmax_agreement_decisive": float(same[decisive].mean()) if decisive.any() else 1.0,
        }
        if head == "probs":
            probs = torch.from_numpy(reference).softmax(1).numpy()
            case["probs_max_abs_diff"] = float(np.abs(outputs["probs"] - probs).max())
        if head == "argmax":
            case["labels_match_logits_argmax"] = bool(
                np.array_equal(outputs["labels"], logits.argmax(1))
            )
        cases.append(case)
        if diff > gates.fp32_max_abs_diff:
            failures.append(f"{x.shape}: max |logit diff| {diff:.3g} > {gates.fp32_max_abs_diff}")
        if case["argmax_agreement_decisive"] < gates.fp32_min_agreement:
            failures.append(
                f"{x.shape}: argmax agreement {case['argmax_agreement_decisive']:.6f} < "
                f"{gates.fp32_min_agreement}"
            )
        if case.get("probs_max_abs_diff", 0.0) > gates.fp32_max_abs_diff:
            failures.append(f"{x.shape}: softmax output differs by {case['probs_max_abs_diff']}")
        if case.get("labels_match_logits_argmax") is False:
            failures.append(f"{x.shape}: argmax output differs from argmax of the logits")
    figures = {"cases": cases, "passed": not failures}
    if failures:
        raise ParityError("fp32 ONNX parity gate failed: " + "; ".join(failures), figures)
    return figures


def int8_parity(
    fp32_session: Any,
    int8_session: Any,
    inputs: list[np.ndarray],
    gates: ParityGates,
    *,
    calibration: CalibrationSet | None = None,
    num_classes: int,
    ignore_index: int = 255,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Argmax agreement of int8 with fp32 ORT (and mIoU drop on labelled calibration data).
    `progress` gets a line per batch ("int8 parity: batch k of n (NxCxHxW)")."""
    batches = list(inputs) + (list(calibration.images) if calibration is not None else [])
    agree = counted = 0
    cases = []
    predictions: list[tuple[np.ndarray, np.ndarray]] = []
    for index, x in enumerate(batches, 1):
        if progress is not None:
            progress(f"int8 parity: batch {index} of {len(batches)} ({_shape_text(x)})")
        reference = ort_outputs(fp32_session, x)[LOGITS_NAME]
        quantized = ort_outputs(int8_session, x)[LOGITS_NAME]
        same = reference.argmax(1) == quantized.argmax(1)
        mask = top2_margin(reference) > gates.int8_margin
        agree += int(same[mask].sum())
        counted += int(mask.sum())
        cases.append(
            {
                "input_shape": list(x.shape),
                "argmax_agreement": float(same.mean()),
                "max_abs_diff": float(np.abs(reference - quantized).max()),
                "mean_abs_diff": float(np.abs(reference - quantized).mean()),
            }
        )
        predictions.append((reference.argmax(1), quantized.argmax(1)))
    agreement = agree / counted if counted else 1.0
    figures: dict[str, Any] = {
        "argmax_agreement": agreement,
        "margin": gates.int8_margin,
        "counted_pixels": counted,
        "cases": cases,
    }
    failures = []
    if agreement < gates.int8_min_agreement:
        failures.append(f"argmax agreement {agreement:.4f} < {gates.int8_min_agreement}")
    if calibration is not None and calibration.labels is not None:
        # one 1 x 3 x H x W batch per calibration image: compare its H x W masks with the labels
        labelled = [(fp32[0], int8[0]) for fp32, int8 in predictions[len(inputs) :]]
        labels = calibration.labels
        fp32_miou = mean_iou([p for p, _ in labelled], labels, num_classes, ignore_index)
        int8_miou = mean_iou([q for _, q in labelled], labels, num_classes, ignore_index)
        figures.update(
            miou_fp32=fp32_miou,
            miou_int8=int8_miou,
            miou_drop=fp32_miou - int8_miou,
            miou_images=len(labels),
        )
        limit = gates.int8_max_miou_drop
        if limit is not None and fp32_miou - int8_miou > limit:
            failures.append(f"mIoU drop {fp32_miou - int8_miou:.4f} > {limit}")
    figures["passed"] = not failures
    if failures:
        raise ParityError("int8 parity gate failed: " + "; ".join(failures), figures)
    return figures


def mean_iou(
    predictions: list[np.ndarray], labels: list[np.ndarray], num_classes: int, ignore_index: int
) -> float:
    """mIoU by the training metric's confusion matrix (`training.metrics.ConfusionMatrix`)."""
    matrix = ConfusionMatrix(num_classes, ignore_index)
    for prediction, label in zip(predictions, labels, strict=True):
        matrix.update(torch.from_numpy(np.asarray(prediction)), torch.from_numpy(np.asarray(label)))
    return float(matrix.compute()["mIoU"])
