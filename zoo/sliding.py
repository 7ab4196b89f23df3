"""Sliding-window inference: logits of a large image from overlapping windows, averaged.

The windows (`zoo.preprocess.sliding_windows`: the model's input size, 1/3 overlap) are the
same as `training.evaluate.slide_logits` uses, so runtime and evaluation agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from zoo import preprocess


def slide_logits(
    run: Callable[[Sequence[np.ndarray]], np.ndarray],
    rgb: np.ndarray,
    window: Sequence[int],
    num_classes: int,
    batch_size: int,
) -> np.ndarray:
    """float32 (num_classes, H, W) logits of the uint8 HxWx3 `rgb`: `run` (a list of uint8
    crops of one size -> their (N, num_classes, h, w) logits) on `batch_size` windows of size
    `window` (H, W) at a time, averaged where windows overlap."""
    height, width = rgb.shape[:2]
    windows = preprocess.sliding_windows(height, width, window)
    total = np.zeros((num_classes, height, width), np.float32)
    count = np.zeros((height, width), np.float32)
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        logits = run([rgb[rows, cols] for rows, cols in chunk])
        for (rows, cols), tile in zip(chunk, logits, strict=True):
            total[:, rows, cols] += tile
            count[rows, cols] += 1
    total /= count
    return total
