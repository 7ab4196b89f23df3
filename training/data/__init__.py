"""Datasets: on-disk layouts, label conversion, readers and generated data.

    prepare_dataset("cityscapes", root)  # optional, once: train-id PNGs (the fast path)
    ds = build_dataset("cityscapes", root, "train")  # raw labels are converted on the fly
    image, mask = ds[0]  # tv_tensors.Image uint8 (3, H, W), tv_tensors.Mask int64 (H, W)
    write_synthcity(out, n_train=500, n_val=100)  # then build_dataset("synthcity", out, ...)

Each dataset has one `DatasetLayout` row in `layouts.LAYOUTS` (folders, suffixes, split names
of its layout family, and a 256-entry raw-label -> train-id table from its `zoo.datasets` row);
one generic reader serves them all.
"""

from training.data.dataset import SegmentationDataset, build_dataset, open_dataset
from training.data.layouts import (
    LAYOUTS,
    DatasetFileError,
    DatasetLayout,
    DatasetLayoutError,
    get_layout,
)
from training.data.prepare import PrepareStats, prepare_dataset
from training.data.synthcity import write_synthcity
from training.data.synthetic import write_tiny_dataset

__all__ = [
    "LAYOUTS",
    "DatasetFileError",
    "DatasetLayout",
    "DatasetLayoutError",
    "PrepareStats",
    "SegmentationDataset",
    "build_dataset",
    "get_layout",
    "open_dataset",
    "prepare_dataset",
    "write_synthcity",
    "write_tiny_dataset",
]
