"""Checking a user's data root whole, as `zoo train --arch` reads it: `zoo data check`'s work.

A data root is a folder dataset (`dataset.json`, `images/`, `masks/`: `training.data.folder`)
or a Hugging Face `datasets` dataset (a `save_to_disk` folder or `hf:<id>`:
`training.data.hf`), read through the same readers as training. Every image and mask of the
training splits is read; the first problem stops the check with the file (or row) named.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.data.folder import FolderSpec, SplitSummary, check_folder_dataset, class_counts
from training.data.hf import HFSegmentationDataset, is_hf_dataset

TRAINING_SPLITS = ("train", "val")  # what `zoo train` reads from a user's data root


def check_data_root(
    root: str | Path,
    image_column: str = "image",
    mask_column: str = "annotation",
    on_item: Callable[[], Any] | None = None,
) -> tuple[FolderSpec, dict[str, SplitSummary]]:
    """Validate the data at `root` as training would read it (every item of the training
    splits, which must exist); returns its classes and a summary per split. The columns are
    those of a Hugging Face dataset; `on_item` is called after each checked item."""
    if is_hf_dataset(root):
        return check_hf_dataset(root, image_column, mask_column, on_item)
    return check_folder_dataset(root, required=TRAINING_SPLITS, on_pair=on_item)


def check_hf_dataset(
    source: str | Path,
    image_column: str = "image",
    mask_column: str = "annotation",
    on_item: Callable[[], Any] | None = None,
) -> tuple[FolderSpec, dict[str, SplitSummary]]:
    """Read every row of the training splits of a Hugging Face dataset through
    `HFSegmentationDataset` (errors name the split and row)."""
    tables = {  # all opened first: a missing split is reported before any row is read
        split: HFSegmentationDataset(source, split, None, image_column, mask_column)
        for split in TRAINING_SPLITS
    }
    summaries: dict[str, SplitSummary] = {}
    for split, table in tables.items():
        summary = SplitSummary()
        for index in range(len(table)):
            _image, mask = table[index]  # checks the image against its mask's size
            summary.add(tuple(mask.shape), *class_counts(mask.numpy(), table.spec))
            if on_item is not None:
                on_item()
        summaries[split] = summary
    return tables[TRAINING_SPLITS[0]].spec, summaries
