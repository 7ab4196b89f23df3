"""How `zoo eval` prints a result: one summary line and the per-class table (class names,
IoU, boundary F, ground-truth pixels)."""

from __future__ import annotations

from typing import Any

__all__ = ["class_table", "summary_line"]


def _percent(value: Any) -> str:
    return "-" if value is None or value != value else f"{100 * value:.2f}"


def summary_line(result: dict[str, Any]) -> str:
    """`<dataset> <split> (<n> images): mIoU ... pixel acc ... mBF@... mBIoU ...`."""
    metrics = result["metrics"]
    line = (
        f"{result['dataset']} {result['split']} ({metrics['num_images']} images): "
        f"mIoU {metrics['mIoU']:.4f}  pixel acc {metrics['pixel_acc']:.4f}"
    )
    if "mBF" in metrics:
        line += (
            f"  mBF@{metrics['boundary_tolerance_px']}px {metrics['mBF']:.4f}"
            f"  mBIoU {metrics['mBIoU']:.4f}"
        )
    return line


def class_table(metrics: dict[str, Any]) -> str:
    """The per-class rows of `metrics` (eval.json's): class name, IoU %, boundary F %, and the
    class's ground-truth pixels; "-" where a class is absent from prediction and ground truth."""
    classes = metrics["classes"]
    iou = metrics["per_class_iou"]
    bf = metrics.get("per_class_bf")
    matrix = metrics.get("confusion_matrix")
    pixels = [sum(row) for row in matrix] if matrix is not None else None
    width = max(5, *(len(name) for name in classes))
    header = f"{'class':<{width}}  {'IoU %':>7}"
    if bf is not None:
        header += f"  {'BF %':>7}"
    if pixels is not None:
        header += f"  {'pixels':>12}"
    lines = [header, "-" * len(header)]
    for index, name in enumerate(classes):
        line = f"{name:<{width}}  {_percent(iou[index]):>7}"
        if bf is not None:
            line += f"  {_percent(bf[index]):>7}"
        if pixels is not None:
            line += f"  {pixels[index]:>12}"
        lines.append(line)
    return "\n".join(lines)
