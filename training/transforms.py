"""Joint image/mask transforms (torchvision `transforms.v2`; masks move with images)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from zoo.datasets import IGNORE_INDEX


class RandomScale(v2.Transform):
    """Scale height and width by one random factor from `scale_range` (masks: nearest)."""

    def __init__(self, scale_range: tuple[float, float]) -> None:
        super().__init__()
        self.scale_range = scale_range

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        sizes = {tuple(F.get_size(x)) for x in flat_inputs if isinstance(x, torch.Tensor)}
        if len(sizes) != 1:
            raise ValueError(f"image and mask sizes differ: {sorted(sizes)}")
        height, width = sizes.pop()
        low, high = self.scale_range
        factor = low + (high - low) * torch.rand(()).item()
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return F.resize(inpt, size=params["size"], antialias=True)


def _to_float_normalized(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64}, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ]


def train_transforms(
    crop_size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    scale_range: tuple[float, float] = (0.5, 2.0),
    ignore_index: int = IGNORE_INDEX,
    photometric: bool = True,
) -> v2.Compose:
    """Random scale, random crop (padding: image 0, mask `ignore_index`), horizontal flip,
    colour jitter (when `photometric`), float conversion and normalisation.

    Called as ``transform(image, mask)``; returns image float32 (3, H, W) and mask int64
    (H, W) with H, W = `crop_size`.
    """
    steps: list[v2.Transform] = [
        RandomScale(scale_range),
        v2.RandomCrop(
            crop_size,
            pad_if_needed=True,
            fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index},
        ),
        v2.RandomHorizontalFlip(),
    ]
    if photometric:
        steps.append(v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.04))
    return v2.Compose(steps + _to_float_normalized(mean, std))


def eval_transforms(mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Float conversion and normalisation only: evaluation runs at full resolution."""
    return v2.Compose(_to_float_normalized(mean, std))
