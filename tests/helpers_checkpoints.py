"""Tiny trained checkpoints for tests: models that learned trivially learnable scenes, so
their logits are confident and image-dependent (int8 gates, parity on real decisions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.synthetic import recalibrate_bn, save_checkpoint, small_config
from zoo.models import build_model
from zoo.preprocess import normalize


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
    arch: str, path: str | Path, num_classes: int = 3, steps: int = 30, seed: int = 0
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
