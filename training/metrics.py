"""Segmentation metrics from accumulated counts, exact under DDP (counts are all-reduced).

* `ConfusionMatrix`: mIoU, per-class IoU, pixel accuracy, mean class accuracy (torch.bincount,
  like torchvision's references/segmentation).
* `BoundaryMetrics`: per-class boundary F-score (Gated-SCNN / DAVIS style) and Boundary IoU
  (Cheng et al., CVPR 2021), with a tolerance of `tolerance` pixels, or with Cheng et al.'s own
  definition (`tolerance="cheng"`).

Boundary definitions (documented in docs/experiments.md too):

* The 1-px boundary of a binary class mask is the set of mask pixels with a 4- or
  8-neighbour outside the mask (mask minus its 3x3 erosion). The image border is not a
  boundary.
* Boundary F: a predicted boundary pixel is matched when a ground-truth boundary pixel of the
  same class lies within `tolerance` px (Chebyshev distance: a (2t+1)x(2t+1) max-pool
  dilation), and vice versa. Precision = matched predicted / predicted boundary pixels, recall
  = matched ground-truth / ground-truth boundary pixels, F = 2PR / (P + R). The counts are
  summed over the whole dataset per class (not averaged per image), so the result is exact
  under DDP; mean boundary F averages the classes that have a boundary in the prediction or
  the ground truth (a class with boundary pixels on one side only scores 0).
* Boundary IoU: per class, G_d and P_d are the mask pixels within `tolerance` px of the mask's
  contour (mask minus its (2d+1)x(2d+1) erosion); IoU = |G_d ∩ P_d| / |G_d ∪ P_d|, with
  intersection and union summed over the dataset.
* Ignore: pixels labelled `ignore_index` and every pixel within `tolerance` px of one are left
  out of all boundary counts, so ignored regions neither create nor hide boundaries.
* `tolerance="cheng"`: the definition of Cheng et al.'s reference code (boundary_iou_api,
  `mask_to_boundary`): d = max(1, round(0.02 x image diagonal)) px per image, and the image
  border counts as a contour (the mask is padded with 1 px of background before its erosion).
  The border counts for the 1-px boundaries of boundary F too; ignore is handled as above.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "CHENG",
    "BoundaryMetrics",
    "ConfusionMatrix",
    "SegmentationMetrics",
    "cheng_tolerance",
    "mask_boundary",
    "parse_boundary_tolerance",
]

# `tolerance` value selecting Cheng et al.'s Boundary IoU definition (see the module docstring).
CHENG = "cheng"
CHENG_DIAGONAL_RATIO = 0.02


def _all_reduce_sum(tensor: Tensor) -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}"
        )


def _nan_to_none(values: list[float]) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values]


def _nanmean(values: Tensor) -> float:
    valid = values[~torch.isnan(values)]
    return float(valid.mean()) if valid.numel() else float("nan")


class ConfusionMatrix:
    """`num_classes` x `num_classes` counts (rows: ground truth, columns: prediction)."""

    def __init__(self, num_classes: int, ignore_index: int = 255, device: Any = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of predicted and ground-truth label maps (any equal shape)."""
        _check_pair(pred, target)
        target = target.to(self.mat.device).flatten().long()
        pred = pred.to(self.mat.device).flatten().long()
        keep = target != self.ignore_index
        target, pred = target[keep], pred[keep]
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= self.num_classes):
            raise ValueError(
                f"target holds label {int(target.max())} outside [0, {self.num_classes}) "
                f"that is not the ignore index {self.ignore_index}"
            )
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= self.num_classes):
            raise ValueError(f"prediction holds a label outside [0, {self.num_classes})")
        n = self.num_classes
        self.mat += torch.bincount(target * n + pred, minlength=n * n).reshape(n, n)

    def reduce(self) -> None:
        """Sum the counts over all processes (no-op without torch.distributed)."""
        _all_reduce_sum(self.mat)

    def compute(self) -> dict[str, Any]:
        """mIoU, per-class IoU (None for classes absent from prediction and target), accuracy."""
        mat = self.mat.double().cpu()
        tp = mat.diag()
        gt = mat.sum(1)
        pred = mat.sum(0)
        union = gt + pred - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.tensor(float("nan")))
        acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.tensor(float("nan")))
        total = mat.sum()
        return {
            "mIoU": _nanmean(iou),
            "per_class_iou": _nan_to_none(iou.tolist()),
            "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
            "mean_acc": _nanmean(acc),
            "num_pixels": int(total),
        }


def _max_filter(x: Tensor, radius: int) -> Tensor:
    """Separable (2r+1)x(2r+1) max filter of (N, H, W) float maps; outside the image is
    ignored (max_pool2d pads with -inf)."""
    if radius == 0:
        return x
    k = 2 * radius + 1
    y = F.max_pool2d(x[:, None], (1, k), stride=1, padding=(0, radius))
    return F.max_pool2d(y, (k, 1), stride=1, padding=(radius, 0))[:, 0]


def _label_band(labels: Tensor, radius: int, border: bool = False) -> Tensor:
    """Pixels with a different label within `radius` px (Chebyshev): for each pixel, the
    band of its own class's mask along the contour. The image border is a contour only when
    `border` (the labels are padded with 1 px of a label no pixel has)."""
    x = labels.float()
    if border:
        x = F.pad(x, (1, 1, 1, 1), value=-1.0)  # labels are >= 0: -1 differs from all
    band = _max_filter(x, radius) != -_max_filter(-x, radius)
    return band[..., 1:-1, 1:-1] if border else band


def cheng_tolerance(height: int, width: int, ratio: float = CHENG_DIAGONAL_RATIO) -> int:
    """Cheng et al.'s boundary width: max(1, round(ratio x image diagonal)) px."""
    return max(1, round(ratio * math.hypot(height, width)))


def parse_boundary_tolerance(text: str) -> int | str:
    """A boundary tolerance from the command line: pixels (int >= 0) or "cheng"."""
    if text.strip().lower() == CHENG:
        return CHENG
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(
            f"boundary tolerance must be a number of pixels (>= 0) or {CHENG!r}, got {text!r}"
        )
    return value


def mask_boundary(mask: Tensor) -> Tensor:
    """1-px inner boundary of binary masks (..., H, W): mask pixels with a neighbour outside."""
    shape = mask.shape
    m = mask.reshape(-1, *shape[-2:])
    return (_label_band(m, 1) & m.bool()).reshape(shape)


class BoundaryMetrics:
    """Per-class boundary F-score and Boundary IoU counts at a pixel tolerance (an int), or
    with Cheng et al.'s definition (`tolerance="cheng"`: 2% of each image's diagonal, image
    border counted as a contour).

    `counts` rows: predicted boundary px, matched predicted px, ground-truth boundary px,
    matched ground-truth px, Boundary-IoU intersection, Boundary-IoU union.

    Class-agnostic implementation: a pixel's boundary membership for its own class is decided on
    the label map (a max / min filter differs), and matching compares labels over the
    (2t+1)^2 window offsets, so the cost does not grow with the number of classes.
    """

    def __init__(
        self,
        num_classes: int,
        tolerance: int | str = 3,
        ignore_index: int = 255,
        device: Any = None,
    ) -> None:
        if tolerance != CHENG and (not isinstance(tolerance, int) or tolerance < 0):
            raise ValueError(
                f"boundary tolerance must be an int >= 0 (px) or {CHENG!r}, got {tolerance!r}"
            )
        self.num_classes = num_classes
        self.tolerance = tolerance
        self.tolerances_used: set[int] = set()
        self.ignore_index = ignore_index
        self.counts = torch.zeros(6, num_classes, dtype=torch.int64, device=device)

    def _count(self, labels: Tensor, where: Tensor) -> Tensor:
        return torch.bincount(labels[where], minlength=self.num_classes)[: self.num_classes]

    @staticmethod
    def _matched(source: Tensor, target: Tensor, radius: int) -> Tensor:
        """`source` pixels (label >= 0) with an equal `target` label within `radius` px."""
        height, width = source.shape[-2:]
        padded = F.pad(target, (radius, radius, radius, radius), value=-1)
        hit = torch.zeros_like(source, dtype=torch.bool)
        for dy in range(2 * radius + 1):
            for dx in range(2 * radius + 1):
                hit |= padded[:, dy : dy + height, dx : dx + width] == source
        return hit & (source >= 0)

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add label maps (N, H, W) or (H, W)."""
        _check_pair(pred, target)
        if pred.dim() == 2:
            pred, target = pred[None], target[None]
        device = self.counts.device
        pred = pred.to(device).long()
        target = target.to(device).long()
        cheng = self.tolerance == CHENG
        t = cheng_tolerance(*target.shape[-2:]) if cheng else int(self.tolerance)
        self.tolerances_used.add(t)
        ignore = (target == self.ignore_index).float()
        valid = _max_filter(ignore, max(t, 1)) == 0  # farther than t (>= 1) px from ignore
        valid &= (pred >= 0) & (pred < self.num_classes)
        # 1-px boundaries, labelled with their class (-1 elsewhere; -2 for prediction).
        gb = _label_band(target, 1, cheng) & valid
        pb = _label_band(pred, 1, cheng) & valid
        g_lab = torch.where(gb, target, -1)
        p_lab = torch.where(pb, pred, -2)
        p_hit = self._matched(p_lab, g_lab, t)
        g_hit = self._matched(g_lab, p_lab, t)
        # Boundary IoU bands: mask pixels within max(t, 1) px of their mask's contour.
        radius = max(t, 1)
        gd = _label_band(target, radius, cheng) & valid
        pd = _label_band(pred, radius, cheng) & valid
        inter = self._count(target, gd & pd & (target == pred))
        rows = [
            self._count(pred, pb),
            self._count(pred, p_hit),
            self._count(target, gb),
            self._count(target, g_hit),
            inter,
            self._count(target, gd) + self._count(pred, pd) - inter,
        ]
        self.counts += torch.stack(rows)

    def reduce(self) -> None:
        """Sum the counts over all processes (no-op without torch.distributed)."""
        _all_reduce_sum(self.counts)

    def compute(self) -> dict[str, Any]:
        """Mean and per-class boundary F, precision, recall and Boundary IoU."""
        c = self.counts.double().cpu()
        pb, pm, gb, gm, inter, union = c
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        precision = torch.where(pb > 0, pm / pb.clamp(min=1), nan)
        recall = torch.where(gb > 0, gm / gb.clamp(min=1), nan)
        pr = precision.nan_to_num(0.0)
        rc = recall.nan_to_num(0.0)
        f = torch.where(pr + rc > 0, 2 * pr * rc / (pr + rc).clamp(min=1e-12), 0.0)
        f = torch.where((pb > 0) | (gb > 0), f, nan)
        biou = torch.where(union > 0, inter / union.clamp(min=1), nan)
        return {
            "mBF": _nanmean(f),
            "per_class_bf": _nan_to_none(f.tolist()),
            "boundary_precision": _nanmean(precision),
            "boundary_recall": _nanmean(recall),
            "mBIoU": _nanmean(biou),
            "per_class_biou": _nan_to_none(biou.tolist()),
            "boundary_definition": CHENG if self.tolerance == CHENG else "inner",
            "boundary_tolerance_px": self._tolerance_px(),
        }

    def _tolerance_px(self) -> int | list[int] | None:
        """The tolerance in px: fixed, or (Cheng) the one of this process's images (a sorted
        list when they differ in size; None before any update)."""
        if self.tolerance != CHENG:
            return int(self.tolerance)
        used = sorted(self.tolerances_used)
        return used[0] if len(used) == 1 else (used or None)


class SegmentationMetrics:
    """Confusion-matrix and boundary metrics together: `update`, `reduce`, `compute`."""

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        boundary_tolerance: int | str | None = 3,
        device: Any = None,
    ) -> None:
        """`boundary_tolerance`: px, "cheng" (Cheng et al.'s definition) or None (no boundary
        metrics)."""
        self.confusion = ConfusionMatrix(num_classes, ignore_index, device)
        self.boundary = (
            None
            if boundary_tolerance is None
            else BoundaryMetrics(num_classes, boundary_tolerance, ignore_index, device)
        )

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch: predicted and ground-truth class ids (B, H, W)."""
        self.confusion.update(pred, target)
        if self.boundary is not None:
            self.boundary.update(pred, target)

    def reduce(self) -> None:
        """Sum the counts over all processes (no-op without torch.distributed)."""
        self.confusion.reduce()
        if self.boundary is not None:
            self.boundary.reduce()

    def compute(self) -> dict[str, Any]:
        """mIoU, per-class IoU, accuracies and (if enabled) the boundary metrics."""
        result = self.confusion.compute()
        if self.boundary is not None:
            result.update(self.boundary.compute())
        return result
