"""Evaluation (`training.evaluate`) and the runtime (`Segmenter`) run the same sliding windows.

The expected tiles are written out by hand here (not computed with the project's functions),
and both paths are observed through models that record the crops they are given.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from training.evaluate import predict_logits
from zoo.config import ModelConfig
from zoo.segmenter import Segmenter

HEIGHT, WIDTH, WINDOW = 100, 150, (48, 64)
# stride = ceil(2/3 of the window) = (32, 43); the last tile of each axis is flush with the edge.
EXPECTED_TILES = sorted(
    (top, left, 48, 64) for top in (0, 32, 52) for left in (0, 43, 86)
)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLASSES = 3


def _tile_logits(crop: np.ndarray) -> np.ndarray:
    """A model whose output depends on the whole crop: each channel minus its crop mean."""
    return crop - crop.mean(axis=(-2, -1), keepdims=True)


def _expected_logits(image: np.ndarray) -> np.ndarray:
    """Average of the tile logits over the hand-written tiles (independent of the project)."""
    image = image.astype(np.float64)
    total = np.zeros_like(image)
    count = np.zeros(image.shape[1:])
    for top, left, h, w in EXPECTED_TILES:
        total[:, top : top + h, left : left + w] += _tile_logits(
            image[:, top : top + h, left : left + w]
        )
        count[top : top + h, left : left + w] += 1
    return total / count


def _coordinate_image() -> np.ndarray:
    """uint8 RGB whose red is the row index and green the column index."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    return np.stack([rows, cols, (rows * 7 + cols * 3) % 256], -1).astype(np.uint8)


class _RecordingBackend:
    """A runtime backend that records the (top, left, height, width) of each crop."""

    name, device, providers = "fake", "cpu", ["fake"]

    def __init__(self) -> None:
        self.tiles: list[tuple[int, int, int, int]] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        pixels = batch * (np.array(STD) * 255)[None, :, None, None]
        pixels += (np.array(MEAN) * 255)[None, :, None, None]
        for crop in np.rint(pixels).astype(int):
            self.tiles.append((crop[0, 0, 0], crop[1, 0, 0], *crop.shape[1:]))
        return _tile_logits(batch.astype(np.float64)).astype(np.float32)


class _RecordingNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tiles: list[tuple[int, int, int, int]] = []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.tiles.append((int(x[0, 0, 0, 0]), int(x[0, 1, 0, 0]), *x.shape[-2:]))
        return {"out": x - x.mean(dim=(-2, -1), keepdim=True)}


def test_evaluation_and_runtime_run_the_same_windows() -> None:
    config = ModelConfig(
        arch="lraspp_mbv3", dataset="custom", num_classes=CLASSES,
        classes=["a", "b", "c"], palette=[[0, 0, 0]] * CLASSES,
        mean=list(MEAN), std=list(STD), input_size=list(WINDOW),
    )  # fmt: skip
    backend = _RecordingBackend()
    segmenter = Segmenter(backend, config, mode="slide")  # type: ignore[arg-type]
    image = _coordinate_image()
    runtime = segmenter.predict_logits(image, max_side=None)
    assert sorted(backend.tiles) == EXPECTED_TILES

    net = _RecordingNet()
    raw = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float64))[None]
    evaluation = predict_logits(net, raw, mode="slide", window=WINDOW)[0].numpy()
    assert sorted(net.tiles) == EXPECTED_TILES

    normalised = (image.transpose(2, 0, 1) / 255.0 - np.array(MEAN)[:, None, None]) / np.array(
        STD
    )[:, None, None]
    np.testing.assert_allclose(runtime, _expected_logits(normalised), atol=1e-4)
    np.testing.assert_allclose(evaluation, _expected_logits(image.transpose(2, 0, 1)), atol=1e-4)


def test_default_stride_at_cityscapes_size() -> None:
    """512x1024 windows over a 1024x2048 frame: stride (342, 683), three tiles per axis."""
    net = _RecordingNet()
    rows, cols = np.mgrid[0:1024, 0:2048]
    image = torch.from_numpy(np.stack([rows, cols, rows * 0], 0).astype(np.float32))[None]
    predict_logits(net, image, mode="slide", window=(512, 1024))
    assert sorted(net.tiles) == sorted(
        (top, left, 512, 1024) for top in (0, 342, 512) for left in (0, 683, 1024)
    )
