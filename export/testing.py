"""Checkpoints for tests and benchmarks: random weights made realistic, tiny trained models.

Random-init networks give near-constant logits (BatchNorm statistics of 0/1 on activations
that are nothing like that), so backend comparisons on them mean little; `recalibrate_bn`
re-estimates the statistics on smooth synthetic images first.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from export.images import synthetic_images
from zoo.config import ModelConfig
from zoo.models import build_model
from zoo.preprocess import normalize


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Re-estimate every BatchNorm's running statistics on `batches`; returns it in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
    model.train()
    for batch in batches:
        model(batch)
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()


def synthetic_batches(
    mean: list[float], std: list[float], size: tuple[int, int] = (96, 96), count: int = 3
) -> list[torch.Tensor]:
    """`count` batches of two smooth synthetic images."""
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
    path = Path(path)
    torch.save({"model": model.state_dict(), "config": config.to_dict(), "iteration": 0}, path)
    return path


def random_checkpoint(
    arch: str, path: str | Path, num_classes: int = 4, aux_loss: bool = False, seed: int = 0
) -> Path:
    """A BN-calibrated random-weight checkpoint of `arch` (with aux head if asked)."""
    torch.manual_seed(seed)
    config = small_config(arch, num_classes)
    model = build_model(arch, num_classes, aux_loss=aux_loss)
    recalibrate_bn(model, synthetic_batches(config.mean, config.std))
    return save_checkpoint(model, config, path)


def pattern_images(
    count: int, size: tuple[int, int], num_classes: int, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Trivially learnable scenes: flat rectangles whose colour encodes the class.

    Returns (uint8 H x W x 3 images, int64 H x W labels).
    """
    rng = np.random.default_rng(seed)
    colours = np.linspace(30, 225, num_classes).astype(np.uint8)
    height, width = size
    images, labels = [], []
    for _ in range(count):
        label = np.zeros(size, np.int64)
        for _ in range(4):
            y0, x0 = rng.integers(0, height - 8), rng.integers(0, width - 8)
            h, w = (
                rng.integers(height // 4, height // 2 + 1),
                rng.integers(width // 4, width // 2 + 1),
            )
            label[y0 : y0 + h, x0 : x0 + w] = rng.integers(1, num_classes)
        image = np.stack([colours[label], colours[::-1][label], np.full(size, 128)], -1)
        images.append(image.astype(np.uint8))
        labels.append(label)
    return images, labels


def trained_checkpoint(
    arch: str, path: str | Path, num_classes: int = 3, steps: int = 60, seed: int = 0
) -> Path:
    """`arch` briefly trained (Adam) on `pattern_images`: confident, image-dependent logits.

    BatchNorm statistics are re-estimated on the training images afterwards (the running
    averages lag far behind weights that change this fast).
    """
    torch.manual_seed(seed)
    config = small_config(arch, num_classes)
    model = build_model(arch, num_classes)
    images, labels = pattern_images(16, (96, 96), num_classes, seed=seed)
    x = torch.from_numpy(np.concatenate([normalize(i, config.mean, config.std) for i in images]))
    y = torch.from_numpy(np.stack(labels))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        batch = slice((step * 4) % 16, (step * 4) % 16 + 4)
        loss = nn.functional.cross_entropy(model(x[batch])["out"], y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    recalibrate_bn(model, x.split(4))
    return save_checkpoint(model, config, path)
