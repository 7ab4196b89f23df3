"""Writing SynthCity frames to disk in the Cityscapes layout.

A new set is written into a build folder beside the target and swapped in whole
(`zoo.modeldir.replace_dir`, as `zoo export` does): writing 2 frames where 4 were leaves 2,
and a failed or killed run leaves the previous set. A non-empty folder that is not SynthCity
is refused, never replaced.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from training.data.io import save_png_atomic
from training.data.layouts import CITYSCAPES_LUT, DatasetLayoutError
from training.data.parallel import run_jobs
from training.data.synthcity.scene import render_frame
from zoo.fileio import default_file_mode
from zoo.modeldir import new_build_dir, recover_leftovers, replace_dir

FOLDERS = ("leftImg8bit", "gtFine")


def frame_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of frame `index` of `split` (frames do not depend on counts)."""
    return np.random.default_rng([seed, ("train", "val", "test").index(split), index])


def frame_stem(split: str, index: int, per_city: int = 100) -> str:
    """Cityscapes-style stem, e.g. ``synth0/synth0_000003_000019`` (val: ``synthval0/...``)."""
    city = f"synth{'' if split == 'train' else split}{index // per_city}"
    return f"{city}/{city}_{index % per_city:06d}_000019"


def foreign_entries(root: Path) -> list[Path]:
    """What under `root` SynthCity did not write: entries beside `leftImg8bit/` and `gtFine/`,
    split folders other than train/val, and cities not named `synth*` (up to 5 listed)."""
    if not root.is_dir():
        return []
    foreign = [p for p in root.iterdir() if p.name not in FOLDERS]
    for folder in (root / name for name in FOLDERS if (root / name).is_dir()):
        for split in folder.iterdir():
            if split.name not in ("train", "val") or not split.is_dir():
                foreign.append(split)
                continue
            foreign += [c for c in split.iterdir() if not c.name.startswith("synth")]
    return sorted(foreign)[:5]


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
    """Write SynthCity as `root` in the Cityscapes layout (leftImg8bit, gtFine labelIds
    and labelTrainIds): exactly `n_train` + `n_val` frames, replacing a SynthCity set already
    there; the same `seed` gives the same files. Returns `root`."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetLayoutError(f"{root} is a file: give a folder to write SynthCity into")
    if foreign := foreign_entries(root):
        raise DatasetLayoutError(
            f"{root} holds data that is not SynthCity ({', '.join(map(str, foreign))}): "
            "give a new or empty folder, or a SynthCity folder to replace"
        )
    target = root.resolve()  # (a name for the folder itself, also for ".")
    recover_leftovers(target)  # build folders of killed runs
    work = new_build_dir(target)
    try:
        mode = default_file_mode()
        work.chmod(mode | ((mode & 0o444) >> 2))  # mkdtemp's 0700 -> the umask's usual
        jobs = [
            (work, split, i, seed, size)
            for split, n in (("train", n_train), ("val", n_val))
            for i in range(n)
        ]
        run_jobs(_write_frame, jobs, workers, desc="synthcity", unit="frame", progress=progress)
        replace_dir(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return root
