"""One-off conversion of raw labels to train-id PNGs (the fast path for training)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from training.data.dataset import to_train_ids
from training.data.files import find_samples
from training.data.io import read_label, save_png_atomic
from training.data.layouts import get_layout
from training.data.parallel import run_jobs


class PrepareStats(NamedTuple):
    """What `prepare_dataset` did: labels converted now, labels already converted."""

    converted: int
    skipped: int


def _convert(job: tuple[Path, Path, np.ndarray]) -> None:
    source, target, lut = job
    save_png_atomic(to_train_ids(read_label(source), lut), target)


def prepare_dataset(
    name: str, root: str | Path, workers: int | None = None, progress: bool = True
) -> PrepareStats:
    """Convert every raw label of dataset `name` under `root` to a train-id PNG.

    Converted labels go where the reader looks first (`DatasetLayout.trainid_dir`); labels
    converted before are skipped, so running it again is cheap and safe. Every split whose
    image folder exists is converted (other than train/val: only when it has labels); a
    missing or broken layout is a `DatasetLayoutError` naming what was expected.
    """
    layout = get_layout(name)
    base = layout.resolve_root(root)
    splits = [
        split
        for split in layout.splits
        if layout.image_folder(base, split).is_dir()
        and (split in ("train", "val") or layout.label_folder(base, split).is_dir())
    ] or ["train"]
    jobs, skipped = [], 0
    for split in splits:
        folder = layout.trainid_folder(base, split)
        for sample in find_samples(layout, root, split):
            if sample.train_ids:
                skipped += 1
            else:
                target = folder / (sample.stem + layout.trainid_suffix)
                jobs.append((sample.label, target, layout.lut))
    run_jobs(_convert, jobs, workers, desc=f"prepare {name}", unit="label", progress=progress)
    return PrepareStats(len(jobs), skipped)
