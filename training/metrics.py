"""Segmentation metrics from accumulated counts, exact under DDP (counts are all-reduced).

* `ConfusionMatrix`: mIoU, per-class IoU, pixel accuracy, mean class accuracy (torch.bincount,
  like torchvision's references/segmentation).
* `BoundaryMetrics`: per-class boundary F-score (Gated-SCNN / DAVIS style) and Boundary IoU
  (Cheng et al., CVPR 2021), with a tolerance of `tolerance` pixels.

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
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BoundaryMetrics", "ConfusionMatrix", "SegmentationMetrics", "mask_boundary"]


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


def _erode(mask: Tensor, radius: int) -> Tensor:
    """Binary erosion (square (2r+1) window); outside the image counts as inside the mask."""
    if radius == 0:
        return mask
    k = 2 * radius + 1
    return -F.max_pool2d(-mask, k, stride=1, padding=radius)


def _dilate(mask: Tensor, radius: int) -> Tensor:
    """Binary dilation (square (2r+1) window); outside the image counts as background."""
    if radius == 0:
        return mask
    k = 2 * radius + 1
    return F.max_pool2d(mask, k, stride=1, padding=radius)


def mask_boundary(mask: Tensor) -> Tensor:
    """1-px inner boundary of binary masks (..., H, W): mask pixels with a neighbour outside."""
    shape = mask.shape
    m = mask.reshape(-1, 1, *shape[-2:]).float()
    return (m - _erode(m, 1)).reshape(shape) > 0


class BoundaryMetrics:
    """Per-class boundary F-score and Boundary IoU counts at a pixel tolerance.

    `counts` rows: predicted boundary px, matched predicted px, ground-truth boundary px,
    matched ground-truth px, Boundary-IoU intersection, Boundary-IoU union.
    """

    def __init__(
        self,
        num_classes: int,
        tolerance: int = 3,
        ignore_index: int = 255,
        device: Any = None,
        class_chunk: int = 8,
    ) -> None:
        if tolerance < 0:
            raise ValueError(f"boundary tolerance must be >= 0 px, got {tolerance}")
        self.num_classes = num_classes
        self.tolerance = tolerance
        self.ignore_index = ignore_index
        self.class_chunk = class_chunk
        self.counts = torch.zeros(6, num_classes, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add label maps (N, H, W) or (H, W)."""
        _check_pair(pred, target)
        if pred.dim() == 2:
            pred, target = pred[None], target[None]
        device = self.counts.device
        pred = pred.to(device).long()
        target = target.to(device).long()
        t = self.tolerance
        ignore = (target == self.ignore_index)[:, None].float()
        valid = _dilate(ignore, max(t, 1)) == 0  # (N, 1, H, W)
        present = torch.unique(torch.cat([pred[valid[:, 0]], target[valid[:, 0]]]))
        present = present[(present >= 0) & (present < self.num_classes)]
        for start in range(0, present.numel(), self.class_chunk):
            classes = present[start : start + self.class_chunk]
            view = classes.view(1, -1, 1, 1)
            p = (pred[:, None] == view).float()  # (N, K, H, W)
            g = (target[:, None] == view).float()
            pb = ((p - _erode(p, 1)) > 0) & valid
            gb = ((g - _erode(g, 1)) > 0) & valid
            p_hit = pb & (_dilate(gb.float(), t) > 0)
            g_hit = gb & (_dilate(pb.float(), t) > 0)
            # Boundary IoU bands: mask pixels within t px of the contour.
            radius = max(t, 1)
            pd = ((p - _erode(p, radius)) > 0) & valid
            gd = ((g - _erode(g, radius)) > 0) & valid
            rows = torch.stack(
                [
                    pb.sum((0, 2, 3)),
                    p_hit.sum((0, 2, 3)),
                    gb.sum((0, 2, 3)),
                    g_hit.sum((0, 2, 3)),
                    (pd & gd).sum((0, 2, 3)),
                    (pd | gd).sum((0, 2, 3)),
                ]
            )
            self.counts[:, classes] += rows

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
            "boundary_tolerance_px": self.tolerance,
        }


class SegmentationMetrics:
    """Confusion-matrix and boundary metrics together: `update`, `reduce`, `compute`."""

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        boundary_tolerance: int | None = 3,
        device: Any = None,
    ) -> None:
        self.confusion = ConfusionMatrix(num_classes, ignore_index, device)
        self.boundary = (
            None
            if boundary_tolerance is None
            else BoundaryMetrics(num_classes, boundary_tolerance, ignore_index, device)
        )

    def update(self, pred: Tensor, target: Tensor) -> None:
        self.confusion.update(pred, target)
        if self.boundary is not None:
            self.boundary.update(pred, target)

    def reduce(self) -> None:
        self.confusion.reduce()
        if self.boundary is not None:
            self.boundary.reduce()

    def compute(self) -> dict[str, Any]:
        result = self.confusion.compute()
        if self.boundary is not None:
            result.update(self.boundary.compute())
        return result
