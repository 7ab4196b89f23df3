"""Datasets: on-disk layouts, label conversion, readers and generated data."""

from training.data.dataset import SegmentationDataset, build_dataset
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
    "prepare_dataset",
    "write_synthcity",
    "write_tiny_dataset",
]
