"""Tiny random datasets written in each real on-disk layout, with raw-format labels.

Every raw label value of a dataset appears in each label image (when it has enough pixels),
so tests can check the label conversion on known pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.data.layouts import get_layout

# Per layout family: how a sample is named (from split folder and index) and the values its
# raw labels may hold.
_TINY: dict[str, tuple[str, tuple[int, ...]]] = {
    "cityscapes": ("tiny/tiny_{i:06d}_000019", tuple(range(34))),
    "ade20k": ("ADE_{split}_{i:08d}", tuple(range(151))),
    "cocostuff": ("{i:012d}", (*range(182), 255)),
}


def write_tiny_dataset(
    name: str,
    root: str | Path,
    n_train: int = 2,
    n_val: int = 2,
    size: tuple[int, int] = (32, 48),
    seed: int = 0,
) -> Path:
    """Write a tiny random dataset `name` under `root` in its real layout; returns the root.

    Images are random RGB, labels random raw values (every value present when h*w allows).
    """
    layout = get_layout(name)
    stem_format, values = _TINY[layout.family]
    base = Path(root) / layout.root_subdir if layout.root_subdir else Path(root)
    rng = np.random.default_rng(seed)
    h, w = size
    for split, count in (("train", n_train), ("val", n_val)):
        for i in range(count):
            stem = stem_format.format(split=split, i=i + 1)
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            label = np.resize(rng.permutation(np.array(values, dtype=np.uint8)), h * w)
            for folder, suffix, array in (
                (layout.image_folder(base, split), layout.image_suffix, image),
                (layout.label_folder(base, split), layout.label_suffix, label.reshape(h, w)),
            ):
                path = folder / (stem + suffix)
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(path)
    return Path(root)
