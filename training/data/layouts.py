"""The on-disk layout of each dataset and its raw-label -> train-id lookup table.

One `DatasetLayout` row per layout family (folders, suffixes, split names: `FAMILIES`); each
dataset of `zoo.datasets.DATASETS` names its family and its label table, and `LAYOUTS` holds
one row per dataset, derived from both. The generic reader (`training.data.dataset`) and the
converter (`training.data.prepare`) are driven only by these rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from zoo.datasets import DATASETS, IGNORE_INDEX, DatasetInfo
from zoo.lookup import lookup


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
    family: str = ""  # the `FAMILIES` row this layout is (name of the family itself there)

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
        return lookup(self.splits, split, "split", where=f"for {self.name}")

    def image_folder(self, root: Path, split: str) -> Path:
        """Folder of the split's images under the dataset root."""
        return root / self.image_dir.format(split=self.split_dir(split))

    def label_folder(self, root: Path, split: str) -> Path:
        """Folder of the split's raw labels."""
        return root / self.label_dir.format(split=self.split_dir(split))

    def trainid_folder(self, root: Path, split: str) -> Path:
        """Folder of the split's converted train-id labels (`zoo data prepare`)."""
        return root / self.trainid_dir.format(split=self.split_dir(split))


_NO_LUT = make_lut({})  # families carry no label table; each dataset brings its own

FAMILIES: dict[str, DatasetLayout] = {
    layout.name: layout
    for layout in (
        DatasetLayout(
            name="cityscapes",
            image_dir="leftImg8bit/{split}",
            label_dir="gtFine/{split}",
            trainid_dir="gtFine/{split}",
            image_suffix="_leftImg8bit.png",
            label_suffix="_gtFine_labelIds.png",
            trainid_suffix="_gtFine_labelTrainIds.png",
            stem_glob="*/*",
            splits={"train": "train", "val": "val", "test": "test"},
            lut=_NO_LUT,
        ),
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
            lut=_NO_LUT,
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
            lut=_NO_LUT,
        ),
    )
}


def layout_of(info: DatasetInfo) -> DatasetLayout:
    """The layout of dataset `info`: its family's folders with its own label table."""
    family = lookup(FAMILIES, info.layout, "layout", where=f"of dataset {info.name}")
    raw_ids = info.raw_ids or tuple(range(info.num_classes))
    lut = make_lut({raw: train_id for train_id, raw in enumerate(raw_ids)})
    return replace(family, name=info.name, lut=lut, family=family.name)


LAYOUTS: dict[str, DatasetLayout] = {
    name: layout_of(info) for name, info in DATASETS.items() if info.layout
}
CITYSCAPES_LUT = LAYOUTS["cityscapes"].lut  # labelIds -> the 19 evaluation classes


def get_layout(name: str) -> DatasetLayout:
    """The layout of dataset `name`; an unknown name lists the valid ones."""
    return lookup(LAYOUTS, name, "dataset")
