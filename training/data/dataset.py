"""One generic segmentation dataset, parametrised by a `DatasetLayout`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from training.data.files import Sample, find_samples
from training.data.io import read_image, read_label
from training.data.layouts import DatasetFileError, DatasetLayout, DatasetLayoutError, get_layout
from zoo.datasets import CUSTOM, DatasetInfo, get_dataset_info

Transform = Callable[[tv_tensors.Image, tv_tensors.Mask], Any]


def to_train_ids(label: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Raw label values -> train ids through a 256-entry table."""
    return lut[label]


def check_train_ids(label: np.ndarray, num_classes: int, ignore_index: int, path: Path) -> None:
    """Raise if a converted label holds a value that is neither a class nor the ignore index."""
    bad = (label >= num_classes) & (label != ignore_index)
    if bad.any():
        values = sorted(np.unique(label[bad]).tolist())[:10]
        raise DatasetFileError(
            f"train-id label {path} holds values {values} outside 0..{num_classes - 1} and "
            f"{ignore_index}; delete it and run `zoo data prepare` again"
        )


def make_item(
    image: np.ndarray, mask: np.ndarray, image_name: Any, mask_name: Any, transform: Any
) -> Any:
    """Check an RGB image (H, W, 3) against its class-id mask's size and return the tv_tensors
    pair (uint8 image (3, H, W), int64 mask (H, W)), transformed when `transform` is given."""
    if image.shape[:2] != mask.shape:
        raise DatasetFileError(
            f"image {image_name} is {image.shape[1]}x{image.shape[0]} but its mask "
            f"{mask_name} is {mask.shape[1]}x{mask.shape[0]} (width x height)"
        )
    image_t = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))))
    mask_t = tv_tensors.Mask(torch.from_numpy(mask.astype(np.int64)))
    if transform is None:
        return image_t, mask_t
    return transform(image_t, mask_t)


class SegmentationDataset(Dataset):
    """(image, mask) pairs of one split; raw labels are converted on the fly.

    Without a transform an item is a `tv_tensors.Image` uint8 (3, H, W) and a
    `tv_tensors.Mask` int64 (H, W) of train ids with `info.ignore_index` as ignore.
    """

    def __init__(
        self,
        layout: DatasetLayout,
        root: str | Path,
        split: str,
        transform: Transform | None = None,
    ) -> None:
        self.layout = layout
        self.info: DatasetInfo = get_dataset_info(layout.name)
        self.root = layout.resolve_root(root)
        self.split = split
        self.transform = transform
        self.samples: list[Sample] = find_samples(layout, root, split)

    @property
    def files(self) -> list[tuple[Path, Path]]:
        """(image_path, label_path) of every sample, in order."""
        return [(s.image, s.label) for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def load_mask(self, index: int) -> np.ndarray:
        """The train-id mask of sample `index` as uint8 (H, W)."""
        sample = self.samples[index]
        label = read_label(sample.label)
        if sample.train_ids:
            check_train_ids(label, self.info.num_classes, self.info.ignore_index, sample.label)
            return label
        return to_train_ids(label, self.layout.lut)

    def __getitem__(self, index: int) -> Any:
        sample = self.samples[index]
        image, mask = read_image(sample.image), self.load_mask(index)
        return make_item(image, mask, sample.image, sample.label, self.transform)

    def __repr__(self) -> str:
        args = f"{self.layout.name!r}, {str(self.root)!r}, {self.split!r}"
        return f"{type(self).__name__}({args}, {len(self)} samples)"


def build_dataset(
    name: str, root: str | Path, split: str, transform: Transform | None = None
) -> SegmentationDataset:
    """The `split` ("train" or "val") of dataset `name` stored under `root`."""
    return SegmentationDataset(get_layout(name), root, split, transform)


class FolderDataset(Dataset):
    """A split of a folder dataset (`training.data.folder`): same items as
    `SegmentationDataset`; `info` comes from the folder's `dataset.json`."""

    def __init__(self, root: str | Path, split: str, transform: Transform | None = None) -> None:
        from training.data import folder

        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.spec = folder.read_spec(self.root)
        self.info: DatasetInfo = self.spec.info
        self.pairs = folder.find_pairs(self.root, split)

    @property
    def files(self) -> list[tuple[Path, Path]]:
        """(image_path, mask_path) of every sample, in order."""
        return [(p.image, p.mask) for p in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def load_mask(self, index: int) -> np.ndarray:
        """The class-id mask of sample `index` (H, W)."""
        from training.data.folder import read_mask

        return read_mask(self.pairs[index].mask, self.spec)

    def __getitem__(self, index: int) -> Any:
        pair = self.pairs[index]
        image, mask = read_image(pair.image), self.load_mask(index)
        return make_item(image, mask, pair.image, pair.mask, self.transform)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, {self.split!r}, {len(self)} samples)"


def open_dataset(
    dataset: str,
    root: str | Path,
    split: str,
    transform: Transform | None = None,
    image_column: str = "image",
    mask_column: str = "annotation",
) -> Any:
    """The `split` of the data at `root`: a folder dataset (`dataset.json`), a Hugging Face
    `datasets` dataset (saved folder or `hf:<id>`), else benchmark `dataset`'s own layout.
    The result has `.info` (classes, palette, ignore index) and a settable `.transform`."""
    from training.data.folder import is_folder_dataset
    from training.data.hf import HFSegmentationDataset, is_hf_dataset

    if is_hf_dataset(root):  # (its folder may hold a dataset.json for the class names)
        return HFSegmentationDataset(root, split, transform, image_column, mask_column)
    if is_folder_dataset(root):
        return FolderDataset(root, split, transform)
    if dataset == CUSTOM:
        raise DatasetLayoutError(
            f"{root} is neither a folder dataset (no dataset.json) nor a Hugging Face dataset "
            "(no dataset_dict.json / state.json, not hf:<id>); see README 'Your own data'"
        )
    return build_dataset(dataset, root, split, transform)
