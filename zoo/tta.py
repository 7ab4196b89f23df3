"""Test-time augmentation: multi-scale + horizontal flip, logits averaged (numpy, torch-free).

The usual Cityscapes / ADE20K protocol runs an image at several scales of its size (e.g.
0.5 0.75 1.0 1.25 1.5 1.75) and mirrored, resizes each result's logits back to the image's
size and averages them. `Segmenter.predict(..., tta=TTA(...))` does this on every backend, and
`zoo eval --scales ... --flip` measures it.

Resizing: the image bilinearly (antialiased when shrinking, `zoo.preprocess.resize_rgb`), the
logits bilinearly with half-pixel centres (`zoo.preprocess.resize_logits`). Logits (not
probabilities) are averaged, as the flip of `training.evaluate.predict_logits`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from zoo import preprocess

__all__ = ["STANDARD_SCALES", "TTA", "check_tta", "scaled_shape", "tta_logits"]

STANDARD_SCALES: Final = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
"""The multi-scale ratios of the Cityscapes / ADE20K protocol (MMSegmentation's aug test)."""


@dataclass(frozen=True)
class TTA:
    """Test-time augmentation settings: the `scales` (ratios of the image's size) and whether
    each scale also runs horizontally flipped. `TTA()` is plain prediction."""

    scales: tuple[float, ...] = (1.0,)
    flip: bool = False

    def __post_init__(self) -> None:
        scales = tuple(self.scales) if isinstance(self.scales, Sequence) else (self.scales,)
        if not scales:
            raise ValueError("TTA needs at least one scale, e.g. scales=(1.0,)")
        for scale in scales:
            if isinstance(scale, bool) or not isinstance(scale, int | float):
                raise ValueError(f"TTA scales must be numbers, got {scale!r}")
            if not (math.isfinite(scale) and 0 < scale <= 8):
                raise ValueError(f"TTA scale {scale!r} must be in (0, 8]")
        object.__setattr__(self, "scales", tuple(float(s) for s in scales))
        object.__setattr__(self, "flip", bool(self.flip))

    @classmethod
    def standard(cls) -> TTA:
        """The Cityscapes / ADE20K protocol: `STANDARD_SCALES` with flip."""
        return cls(STANDARD_SCALES, flip=True)

    @property
    def is_plain(self) -> bool:
        """Whether this is a single pass at the image's own size (no augmentation)."""
        return self.scales == (1.0,) and not self.flip

    @property
    def passes(self) -> int:
        """Network runs per image (per sliding window in slide mode)."""
        return len(self.scales) * (2 if self.flip else 1)

    def to_dict(self) -> dict[str, object]:
        """The record of `eval.json` ("scales", "flip")."""
        return {"scales": list(self.scales), "flip": self.flip}


def check_tta(tta: object) -> TTA:
    """`tta` as a `TTA` (None: plain prediction); TypeError naming anything else."""
    if tta is None:
        return TTA()
    if not isinstance(tta, TTA):
        raise TypeError(
            f"tta must be a zoo.tta.TTA (e.g. TTA(scales=(0.75, 1.0, 1.25), flip=True)) or None, "
            f"got {tta!r}"
        )
    return tta


def scaled_shape(height: int, width: int, scale: float) -> tuple[int, int]:
    """(height, width) times `scale`, rounded half up, at least 1 px each."""
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def tta_logits(run: Callable[[np.ndarray], np.ndarray], rgb: np.ndarray, tta: TTA) -> np.ndarray:
    """The mean of `run(image)` (CxhxW logits at the size of its RGB uint8 input) over the
    scaled and flipped copies of `rgb` (HxWx3), each resized back to HxW: float32 CxHxW."""
    height, width = rgb.shape[:2]
    total: np.ndarray | None = None
    for scale in tta.scales:
        scaled = preprocess.resize_rgb(rgb, scaled_shape(height, width, scale))
        views = [(scaled, False), (np.ascontiguousarray(scaled[:, ::-1]), True)]
        for view, flipped in views[: 2 if tta.flip else 1]:
            logits = run(view)
            if flipped:
                logits = logits[:, :, ::-1]
            logits = preprocess.resize_logits(np.ascontiguousarray(logits), (height, width))
            total = logits.astype(np.float32, copy=True) if total is None else total + logits
    assert total is not None
    total /= tta.passes
    return total
