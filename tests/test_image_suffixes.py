"""One list of image-file suffixes: every kind of file one reader takes, the others take too.

The readers: `zoo predict` on a folder, a folder dataset's images, the calibration / precision
gate frames of an export, and `zoo.preprocess.read_image` that all of them decode with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export.images import find_images
from training.data.folder import find_pairs
from zoo.predict_inputs import collect_inputs
from zoo.preprocess import IMAGE_EXTENSIONS, read_image

LOSSY = {".jpg", ".jpeg", ".webp"}
GREY = {".pgm"}


def _write(path: Path, rgb: np.ndarray) -> None:
    suffix = path.suffix.lower()
    image = Image.fromarray(rgb)
    if suffix in GREY:
        image = image.convert("L")
    image.save(path, **({"lossless": True} if suffix == ".webp" else {}))  # format from suffix


@pytest.fixture
def one_of_each(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A folder with a 4x6 flat-colour image of every suffix (and one upper-case one), a
    text file, a hidden `._*.png` file and a mask folder that gives each image a mask (a
    folder dataset's split)."""
    images, masks = tmp_path / "images" / "train", tmp_path / "masks" / "train"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    rgb = np.full((4, 6, 3), (200, 100, 50), np.uint8)
    paths = [images / f"kind_{suffix[1:]}{suffix}" for suffix in sorted(IMAGE_EXTENSIONS)]
    paths.append(images / "upper.PNG")
    for path in paths:
        _write(path, rgb)
        Image.fromarray(np.zeros((4, 6), np.uint8)).save(masks / f"{path.stem}.png")
    (images / "notes.txt").write_text("not an image")
    (images / "._kind_png.png").write_bytes(b"\x00\x05\x16\x07")  # a macOS resource fork
    return images, sorted(paths)


def test_every_listed_kind_is_decoded_to_rgb(one_of_each: tuple[Path, list[Path]]) -> None:
    _, paths = one_of_each
    assert len(paths) == 11  # ten kinds + an upper-case suffix
    for path in paths:
        rgb = read_image(path)
        assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8, path.name
        if path.suffix.lower() in GREY:  # the grey level of (200, 100, 50): 0.299R+0.587G+...
            assert np.abs(rgb.astype(int) - 124).max() <= 1, path.name
        elif path.suffix.lower() not in LOSSY:
            assert (rgb == (200, 100, 50)).all(), path.name
        else:
            assert np.abs(rgb.astype(int) - (200, 100, 50)).max() <= 8, path.name


def test_predict_dataset_and_calibration_take_the_same_files(
    one_of_each: tuple[Path, list[Path]],
) -> None:
    images, paths = one_of_each
    jobs, _ = collect_inputs([str(images)])
    assert sorted(job.path for job in jobs) == paths
    assert find_images(images) == paths
    root = images.parent.parent
    assert sorted(pair.image for pair in find_pairs(root, "train")) == paths
