"""Class-id masks made visible: palette colours, overlays on the image, paletted mask images.

Pure numpy and Pillow; `Segmenter.colorize`, `.overlay` and `.mask_image` delegate here with
the model's colour table (`palette_lut`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from zoo import preprocess
from zoo.preprocess import ImageInput


def palette_lut(palette: Sequence[Any], num_classes: int) -> np.ndarray:
    """A (max(256, num_classes), 3) uint8 colour table: the palette's colour of each class id,
    black for ids that are not classes (e.g. 255, "ignore")."""
    lut = np.zeros((max(256, num_classes), 3), np.uint8)
    lut[:num_classes] = np.asarray(palette, np.uint8).reshape(-1, 3)
    return lut


def check_mask(mask: Any) -> np.ndarray:
    """`mask` as an HxW integer array, or a ValueError saying what it is instead."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"mask must be an HxW integer array, got {mask.shape} {mask.dtype}")
    return mask


def colorize(mask: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """HxW class ids -> HxWx3 uint8 colours of `lut`; ids outside it (negative, e.g. an ignore
    index of -1 or -100, or past its end): black."""
    mask = check_mask(mask)
    inside = (mask >= 0) & (mask < len(lut))
    colours: np.ndarray = lut[np.where(inside, mask, 0)]
    colours[~inside] = 0
    return colours


def overlay(
    image: ImageInput, mask: np.ndarray, lut: np.ndarray, num_classes: int, alpha: float = 0.5
) -> np.ndarray:
    """The image blended with the colourised mask (`alpha` = mask weight), HxWx3 uint8.

    Pixels whose id is not a class (e.g. 255) show the image unchanged.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = preprocess.to_rgb(image)
    mask = check_mask(mask)
    if rgb.shape[:2] != mask.shape:
        raise ValueError(
            f"image is {rgb.shape[1]}x{rgb.shape[0]} but the mask is "
            f"{mask.shape[1]}x{mask.shape[0]} (width x height)"
        )
    blend = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colorize(mask, lut)
    blend = np.where(((mask >= 0) & (mask < num_classes))[..., None], blend, rgb.astype(np.float32))
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def mask_image(mask: np.ndarray, lut: np.ndarray, paletted: bool) -> Image.Image:
    """A mask as a PIL image: mode "P" with `lut`'s first 256 colours where `paletted` and the
    ids fit in 0..255, else a 16-bit grayscale ("I;16") image."""
    mask = check_mask(mask)
    if mask.size and (mask.min() < 0 or mask.max() > 65535):
        raise ValueError("mask ids must be in 0..65535 to be written as an image")
    if paletted and (not mask.size or mask.max() <= 255):
        data = np.ascontiguousarray(mask, dtype=np.uint8)
        image = Image.frombytes("P", (mask.shape[1], mask.shape[0]), data.tobytes())
        image.putpalette(lut[:256].reshape(-1).tolist())
        return image
    return Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint16))
