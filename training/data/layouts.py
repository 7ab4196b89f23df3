"""The on-disk layout of each dataset and its raw-label -> train-id lookup table.

One `DatasetLayout` row per dataset; the generic reader (`training.data.dataset`) and the
converter (`training.data.prepare`) are driven only by these rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from zoo.datasets import IGNORE_INDEX


class DatasetLayoutError(ValueError):
    """The files on disk do not match the expected layout of a dataset."""


class DatasetFileError(ValueError):
    """One file of a dataset cannot be used (corrupt, wrong mode, wrong size, bad values)."""


def make_lut(mapping: Mapping[int, int]) -> np.ndarray:
    """A 256-entry uint8 table: `mapping` where given, the ignore index everywhere else."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for raw, train_id in mapping.items():
        lut[raw] = train_id
    lut.setflags(write=False)
    return lut


@dataclass(frozen=True)
class DatasetLayout:
    """Where a dataset keeps images and labels, and how raw labels become train ids.

    A sample is named by its *stem*, the path of the image relative to the split's image
    folder without `image_suffix` (e.g. ``aachen/aachen_000000_000019`` for Cityscapes).
    Its raw label is ``root/label_dir/stem + label_suffix`` and its converted (train-id)
    label, written by `prepare_dataset`, is ``root/trainid_dir/stem + trainid_suffix``.
    Folder patterns contain ``{split}``, replaced by the on-disk split folder name.
    """

    name: str
    image_dir: str
    label_dir: str
    trainid_dir: str
    image_suffix: str
    label_suffix: str
    trainid_suffix: str
    stem_glob: str
    splits: Mapping[str, str]
    lut: np.ndarray = field(repr=False)
    root_subdir: str = ""  # optional folder that ROOT may be or contain

    def resolve_root(self, root: str | Path) -> Path:
        """The dataset root: `root` itself, or `root/root_subdir` when that folder exists."""
        root = Path(root)
        if self.root_subdir and root.name != self.root_subdir:
            nested = root / self.root_subdir
            if nested.is_dir() or not (root / self.image_dir.split("/")[0]).exists():
                return nested
        return root

    def split_dir(self, split: str) -> str:
        """The on-disk folder name of user split `split` ("train", "val", ...)."""
        try:
            return self.splits[split]
        except KeyError:
            raise ValueError(
                f"unknown split {split!r} for {self.name}; valid splits: {', '.join(self.splits)}"
            ) from None

    def image_folder(self, root: Path, split: str) -> Path:
        """Folder of the split's images under the dataset root."""
        return root / self.image_dir.format(split=self.split_dir(split))

    def label_folder(self, root: Path, split: str) -> Path:
        """Folder of the split's raw labels."""
        return root / self.label_dir.format(split=self.split_dir(split))

    def trainid_folder(self, root: Path, split: str) -> Path:
        """Folder of the split's converted train-id labels (`zoo data prepare`)."""
        return root / self.trainid_dir.format(split=self.split_dir(split))


# Cityscapes labelIds -> the 19 evaluation classes (cityscapesscripts' labels.py).
CITYSCAPES_LUT = make_lut(
    {
        label_id: train_id
        for train_id, label_id in enumerate(
            (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
        )
    }
)

# ADE20K SceneParsing: 0 is "other" (ignored), 1..150 are the classes.
ADE20K_LUT = make_lut({raw: raw - 1 for raw in range(1, 151)})

# COCO-Stuff-164k stuffthingmaps: ids 0..181 with 11 thing ids that COCO never used.
COCOSTUFF_UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
COCOSTUFF_LUT = make_lut(
    {
        raw: train_id
        for train_id, raw in enumerate(r for r in range(182) if r not in COCOSTUFF_UNUSED_IDS)
    }
)

_CITYSCAPES = DatasetLayout(
    name="cityscapes",
    image_dir="leftImg8bit/{split}",
    label_dir="gtFine/{split}",
    trainid_dir="gtFine/{split}",
    image_suffix="_leftImg8bit.png",
    label_suffix="_gtFine_labelIds.png",
    trainid_suffix="_gtFine_labelTrainIds.png",
    stem_glob="*/*",
    splits={"train": "train", "val": "val", "test": "test"},
    lut=CITYSCAPES_LUT,
)

LAYOUTS: dict[str, DatasetLayout] = {
    layout.name: layout
    for layout in (
        _CITYSCAPES,
        replace(_CITYSCAPES, name="synthcity"),
        DatasetLayout(
            name="ade20k",
            image_dir="images/{split}",
            label_dir="annotations/{split}",
            trainid_dir="annotations_trainids/{split}",
            image_suffix=".jpg",
            label_suffix=".png",
            trainid_suffix=".png",
            stem_glob="ADE_*",
            splits={"train": "training", "val": "validation"},
            lut=ADE20K_LUT,
            root_subdir="ADEChallengeData2016",
        ),
        DatasetLayout(
            name="cocostuff",
            image_dir="images/{split}",
            label_dir="annotations/{split}",
            trainid_dir="annotations_trainids/{split}",
            image_suffix=".jpg",
            label_suffix=".png",
            trainid_suffix=".png",
            stem_glob="*",
            splits={"train": "train2017", "val": "val2017"},
            lut=COCOSTUFF_LUT,
        ),
    )
}


def get_layout(name: str) -> DatasetLayout:
    """The layout of dataset `name`; an unknown name lists the valid ones."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; valid datasets: {', '.join(sorted(LAYOUTS))}"
        ) from None
