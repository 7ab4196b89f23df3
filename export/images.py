"""Images for calibration and parity gates: folders of real images, or smooth synthetic ones.

Arrays are N x 3 x H x W float32, normalised with the model config's mean/std (the ONNX
input contract); labels are H x W int64 train ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.preprocess import IMAGE_EXTENSIONS, is_image_file, normalize, read_image, resize_rgb

CALIB_LIMIT = 16  # calibration images an export uses unless told (--calib-limit)

IMAGE_DIRS = ("images", "image", "img", "leftImg8bit")
LABEL_DIRS = ("labels", "label", "masks", "gtFine", "annotations")


@dataclass
class CalibrationSet:
    """Images (and labels where found) from a folder, at one fixed size."""

    images: list[np.ndarray]  # 1 x 3 x H x W each, normalised
    labels: list[np.ndarray] | None  # H x W each, or None without labels
    paths: list[Path]
    rgb: list[np.ndarray] = field(default_factory=list)  # H x W x 3 uint8 each, as read

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of every image."""
        height, width = self.images[0].shape[2:]
        return int(height), int(width)


def find_images(folder: str | Path) -> list[Path]:
    """All image files under `folder` (`zoo.preprocess.is_image_file`; recursive, sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: calibration folder not found")
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))


def _split_layout(folder: Path) -> tuple[Path, Path | None]:
    """`folder/images` + `folder/labels` (or similar names) if present, else (folder, None)."""
    image_dir = next((folder / n for n in IMAGE_DIRS if (folder / n).is_dir()), None)
    label_dir = next((folder / n for n in LABEL_DIRS if (folder / n).is_dir()), None)
    if image_dir is not None:
        return image_dir, label_dir
    # inside such a tree, e.g. ROOT/leftImg8bit/val -> labels in ROOT/gtFine/val
    parts = folder.parts
    for index, part in enumerate(parts):
        if part in IMAGE_DIRS:
            for name in LABEL_DIRS:
                candidate = Path(*parts[:index], name, *parts[index + 1 :])
                if candidate.is_dir():
                    return folder, candidate
    return folder, None


def load_calibration_set(
    folder: str | Path,
    size: tuple[int, int] | None,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    limit: int = CALIB_LIMIT,
    label_folder: str | Path | None = None,
) -> CalibrationSet:
    """Up to `limit` images from `folder` resized to `size` (H, W; None: the first image's
    size), labels where they exist. Each image file is read once.

    Labels: `label_folder`, or a `labels/` (`masks/`, `gtFine/`...) folder beside an
    `images/` folder inside `folder`; a label has the image's relative path with a `.png`
    suffix (a `_labelTrainIds` / `_label` suffix on the stem is also accepted).
    """
    folder = Path(folder)
    image_dir, found_labels = _split_layout(folder)
    label_dir = Path(label_folder) if label_folder is not None else found_labels
    if label_folder is not None and not Path(label_folder).is_dir():
        raise FileNotFoundError(f"{label_folder}: calibration label folder not found")
    paths = find_images(image_dir)
    if label_dir is not None:
        paths = [p for p in paths if label_dir not in p.parents]
    if not paths:
        suffixes = "/".join(sorted(IMAGE_EXTENSIONS))
        raise ValueError(f"{folder}: no images found for calibration (suffixes {suffixes})")
    paths = _spread(paths, limit)
    rgb: list[np.ndarray] = []
    images, labels = [], []
    for path in paths:
        pixels = read_image(path)
        if size is None:
            size = (pixels.shape[0], pixels.shape[1])
        rgb.append(resize_rgb(pixels, size))
        images.append(normalize(rgb[-1], mean, std))
        if label_dir is not None:
            label_path = _label_for(path, image_dir, label_dir)
            if label_path is None:
                label_dir = None  # not every image has a label: measure no mIoU
                continue
            with Image.open(label_path) as label:
                resized = label.resize((size[1], size[0]), Image.NEAREST)
                labels.append(np.asarray(resized, np.int64))
    return CalibrationSet(images, labels if label_dir is not None else None, paths, rgb)


def _spread(paths: list[Path], limit: int) -> list[Path]:
    """`limit` paths spread evenly over the sorted list (not just the first folder)."""
    if len(paths) <= limit:
        return paths
    picks = np.linspace(0, len(paths) - 1, limit).round().astype(int)
    return [paths[i] for i in picks]


def _label_for(image: Path, image_dir: Path, label_dir: Path) -> Path | None:
    relative = image.relative_to(image_dir)
    stem = relative.stem.removesuffix("_leftImg8bit")
    for name in (stem, f"{stem}_labelTrainIds", f"{stem}_gtFine_labelTrainIds", f"{stem}_label"):
        candidate = label_dir / relative.parent / f"{name}.png"
        if candidate.is_file():
            return candidate
    return None


def synthetic_images(
    shape: tuple[int, int, int, int],
    mean: Sequence[float],
    std: Sequence[float],
    seed: int = 0,
) -> np.ndarray:
    """Smooth random images (low-frequency colour fields plus flat rectangles), normalised.

    Unlike white noise they give segmentation networks structured, image-like activations.
    """
    batch, channels, height, width = shape
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batch):
        coarse = rng.integers(0, 256, size=(rng.integers(3, 9), rng.integers(3, 9), channels))
        field = np.asarray(
            Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC)
        ).copy()
        for _ in range(rng.integers(3, 8)):
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            y1 = min(height, y0 + rng.integers(height // 8 + 1, height // 2 + 2))
            x1 = min(width, x0 + rng.integers(width // 8 + 1, width // 2 + 2))
            field[y0:y1, x0:x1] = rng.integers(0, 256, size=channels)
        out.append(normalize(field, mean, std))
    return np.concatenate(out)
