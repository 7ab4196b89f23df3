"""Reading images and labels with errors that name the file; atomic PNG writes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from training.data.layouts import DatasetFileError
from zoo import preprocess
from zoo.fileio import write_bytes_atomic


def open_image_file(path: Path, kind: str) -> Image.Image:
    """`Image.open` + `load` of a dataset file; DatasetFileError naming the `kind` and file."""
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DatasetFileError(f"cannot read {kind} {path}: {error}") from error
    return image


def read_image(path: str | Path) -> np.ndarray:
    """An image file as an RGB uint8 array (H, W, 3): `zoo.preprocess.read_image`, the
    runtime's reader (EXIF orientation, every mode), so training sees what inference sees."""
    try:
        return preprocess.read_image(path)
    except (OSError, ValueError) as error:
        raise DatasetFileError(str(error)) from error


def read_label(path: str | Path) -> np.ndarray:
    """A single-channel label file (PIL mode L or P) as a uint8 array (H, W)."""
    image = open_image_file(Path(path), "label")
    if image.mode not in ("L", "P"):
        hint = " (a colour visualisation?)" if image.mode in ("RGB", "RGBA") else ""
        raise DatasetFileError(
            f"label {path} is a {image.mode} image{hint}; expected a single-channel "
            "label-id PNG (mode L or P)"
        )
    return np.asarray(image, dtype=np.uint8)


def save_png_atomic(array: np.ndarray, path: str | Path) -> None:
    """Write a uint8 array (H, W) or (H, W, 3) as a PNG, atomically (no fsync: bulk writes)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue(), fsync=False)
