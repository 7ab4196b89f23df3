"""FLOPs of one forward pass, counted on the meta device (shapes only, nothing is computed).

`FlopCounterMode` counts convolutions and matrix products, 2 FLOPs per multiply-add. Shared
by `train_cost.py` (training cost per recipe) and `inference.py` (compute rate per backend).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def forward_flops(model: torch.nn.Module, batch: int, height: int, width: int) -> int:
    """FLOPs of `model` (built on the meta device, in its current train/eval mode) on a
    `batch` x 3 x `height` x `width` input."""
    image = torch.empty(batch, 3, height, width, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(image)
    return counter.get_total_flops()
