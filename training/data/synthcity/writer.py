"""Writing SynthCity frames to disk in the Cityscapes layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.data.io import save_png_atomic
from training.data.layouts import CITYSCAPES_LUT
from training.data.parallel import run_jobs
from training.data.synthcity.scene import render_frame


def frame_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of frame `index` of `split` (frames do not depend on counts)."""
    return np.random.default_rng([seed, ("train", "val", "test").index(split), index])


def frame_stem(split: str, index: int, per_city: int = 100) -> str:
    """Cityscapes-style stem, e.g. ``synth0/synth0_000003_000019`` (val: ``synthval0/...``)."""
    city = f"synth{'' if split == 'train' else split}{index // per_city}"
    return f"{city}/{city}_{index % per_city:06d}_000019"


def _write_frame(job: tuple[Path, str, int, int, tuple[int, int]]) -> None:
    root, split, index, seed, size = job
    image, label_ids = render_frame(frame_rng(seed, split, index), size)
    stem = frame_stem(split, index)
    save_png_atomic(image, root / "leftImg8bit" / split / f"{stem}_leftImg8bit.png")
    gt = root / "gtFine" / split
    save_png_atomic(label_ids, gt / f"{stem}_gtFine_labelIds.png")
    save_png_atomic(CITYSCAPES_LUT[label_ids], gt / f"{stem}_gtFine_labelTrainIds.png")


def write_synthcity(
    root: str | Path,
    n_train: int = 500,
    n_val: int = 100,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write SynthCity under `root` in the Cityscapes layout (leftImg8bit, gtFine labelIds
    and labelTrainIds); the same `seed` gives the same files. Returns `root`."""
    root = Path(root)
    jobs = [
        (root, split, i, seed, size)
        for split, n in (("train", n_train), ("val", n_val))
        for i in range(n)
    ]
    run_jobs(_write_frame, jobs, workers, desc="synthcity", unit="frame", progress=progress)
    return root
