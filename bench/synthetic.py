"""Synthetic inputs for benchmarks and tests: smooth images, blocky label maps, random-weight
checkpoints made realistic. Not part of the installed packages (`bench/` and `tests/` use it).

Random-init networks give near-constant logits (BatchNorm statistics of 0/1 on activations
that are nothing like that), so backend comparisons on them mean little; `recalibrate_bn`
re-estimates the statistics on smooth synthetic images first.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from zoo.config import ModelConfig

if TYPE_CHECKING:  # torch is imported by the functions that need it: smooth_image is torch-free
    import torch
    from torch import nn


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random-ish smooth RGB uint8 image (bicubically upsampled coarse noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(max(2, height // 32), max(2, width // 32), 3))
    image = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC)
    return np.asarray(image)


def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Re-estimate every BatchNorm's running statistics on `batches`; returns it in eval mode."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
    model.train()
    with torch.no_grad():
        for batch in batches:
            model(batch)
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()


def synthetic_batches(
    mean: list[float], std: list[float], size: tuple[int, int] = (96, 96), count: int = 3
) -> list[torch.Tensor]:
    """`count` batches of two smooth synthetic images."""
    import torch

    from export.images import synthetic_images

    return [
        torch.from_numpy(synthetic_images((2, 3, *size), mean, std, seed=100 + seed))
        for seed in range(count)
    ]


def small_config(arch: str, num_classes: int = 4, dataset: str = "synthcity") -> ModelConfig:
    """A config for `arch` with the first `num_classes` classes of `dataset`."""
    base = ModelConfig.for_dataset(arch, dataset)
    return ModelConfig.for_dataset(
        arch,
        dataset,
        num_classes=num_classes,
        classes=base.classes[:num_classes],
        palette=base.palette[:num_classes],
        model_id=f"{arch}_{dataset}_test",
        source_commit="test",
    )


def save_checkpoint(model: nn.Module, config: ModelConfig, path: str | Path) -> Path:
    """A trainer-style checkpoint (`model`, `config` and some training state)."""
    import torch

    path = Path(path)
    torch.save({"model": model.state_dict(), "config": config.to_dict(), "iteration": 0}, path)
    return path


def random_checkpoint(
    arch: str, path: str | Path, num_classes: int = 4, aux_loss: bool = False, seed: int = 0
) -> Path:
    """A BN-calibrated random-weight checkpoint of `arch` (with aux head if asked)."""
    import torch

    from zoo.models import build_model

    torch.manual_seed(seed)
    config = small_config(arch, num_classes)
    model = build_model(arch, num_classes, aux_loss=aux_loss)
    recalibrate_bn(model, synthetic_batches(config.mean, config.std))
    return save_checkpoint(model, config, path)


def blocky_labels(
    num_classes: int, size: tuple[int, int, int], seed: int = 0, ignore_index: int = 255
) -> torch.Tensor:
    """Blocky (B, H, W) uint8 label maps, street-scene-like: per image 16 Voronoi cells,
    8 rectangles, 4 thin poles and wires (1-3 px wide) and one 40x60 box of `ignore_index`
    (at most half of each side); at 512x512 about 4% of pixels have a 4-neighbour of
    another label. Below 65x65 the shapes are placed as on a 65x65 image, and cropped."""
    import torch

    if not 0 < num_classes <= ignore_index <= 255:
        raise ValueError(f"num_classes {num_classes} must be in 1..ignore_index ({ignore_index})")
    g = torch.Generator().manual_seed(seed)
    batch, height, width = size
    out = torch.empty(batch, height, width, dtype=torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for b in range(batch):
        seeds = torch.rand(16, 2, generator=g) * torch.tensor([height, width])
        d = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
        labels = torch.randint(0, num_classes, (16,), generator=g)[d.argmin(0)]
        for _ in range(8):  # rectangles
            y0, x0 = torch.randint(0, max(1, height - 16), (2,), generator=g).tolist()
            h, w = torch.randint(16, 128, (2,), generator=g).tolist()
            labels[y0 : y0 + h, x0 : x0 + w] = torch.randint(0, num_classes, (), generator=g)
        for i in range(4):  # thin poles and wires, 1-3 px wide, 64-320 px long
            y0, x0 = torch.randint(0, max(1, height - 64), (2,), generator=g).tolist()
            length, thickness = int(torch.randint(64, 320, (), generator=g)), 1 + i % 3
            c = torch.randint(0, num_classes, (), generator=g)
            if i % 2:
                labels[y0 : y0 + thickness, x0 : x0 + length] = c
            else:
                labels[y0 : y0 + length, x0 : x0 + thickness] = c
        y0, x0 = torch.randint(0, max(1, height - 64), (2,), generator=g).tolist()
        out[b] = labels
        box_h, box_w = min(40, height // 2), min(60, width // 2)
        out[b, y0 : y0 + box_h, x0 : x0 + box_w] = ignore_index
    return out
