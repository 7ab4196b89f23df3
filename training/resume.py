"""Resuming a training run: which checkpoint, whether the output folder may take the run,
whether the checkpoint is of the same run, and the random streams of every process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from training.checkpoints import load_checkpoint, set_rng_state
from training.distributed import DistInfo, barrier
from training.runs import LAST, PREVIOUS, ResumePoint, clear_run, find_resume_point, holds_run

# Recipe keys a resumed run must share with its checkpoint (they fix data order and shapes).
SAME_RUN_KEYS = ("arch", "dataset", "batch_size", "crop_size", "grad_accum", "seed")


def resume_point(out_dir: Path, resume: str | Path | bool | None) -> ResumePoint | None:
    """The checkpoint to resume from: True = OUT/last.pt (or last.prev.pt if last.pt is
    unreadable; None if the folder has neither), a path = that checkpoint."""
    if resume is True:
        return find_resume_point(out_dir)
    if resume:
        return ResumePoint(Path(resume), load_checkpoint(resume))
    return None


def prepare_out_dir(
    out_dir: Path, point: ResumePoint | None, resume: bool, overwrite: bool, dist_info: DistInfo
) -> None:
    """Refuse to mix a new run into a folder holding another (unless `overwrite`: then clear
    the old run's files first). `resume`: a resume was asked for."""
    existing = holds_run(out_dir)
    inside = point is not None and point.path.resolve().parent == out_dir.resolve()
    if not existing or inside:
        return
    if not overwrite:
        files = ", ".join(existing)
        if point is not None:
            problem = f"holds another run ({files}) than the checkpoint {point.path}:"
        elif resume:
            problem = f"holds a run ({files}) but no checkpoint ({LAST}, {PREVIOUS}):"
        else:
            problem = f"already holds a run ({files}): continue it with --resume,"
        raise ValueError(
            f"{out_dir} {problem} start again with --overwrite (deletes those files) or "
            "choose another --out"
        )
    barrier()  # every rank has read its checkpoint
    if dist_info.is_main:
        clear_run(out_dir)
        print(f"--overwrite: removed {', '.join(existing)} from {out_dir}")
    barrier()


def check_same_run(path: Path, saved: dict[str, Any], recipe: dict[str, Any]) -> None:
    """ValueError naming the key when checkpoint `path`'s recipe `saved` differs from this
    run's `recipe` in a key that fixes the data order or the shapes."""
    for key in SAME_RUN_KEYS:
        if saved.get(key) != recipe[key]:
            raise ValueError(
                f"cannot resume from {path}: its {key} is {saved.get(key)!r}, "
                f"this run's is {recipe[key]!r}"
            )


def restore_rng(
    states: list[dict[str, Any]] | dict[str, Any],
    path: Path,
    dist_info: DistInfo,
    seed: int,
    iteration: int,
) -> None:
    """Restore this process's RNG states saved by a run of the same size; a run of another
    size re-seeds (data order and augmentation stay exact: they depend on the seed only)."""
    states = [states] if isinstance(states, dict) else states  # single-process format
    rank, world = dist_info.rank, dist_info.world_size
    if len(states) == world:
        set_rng_state(states[rank])
        return
    torch.manual_seed(seed + rank + iteration)  # dropout noise is not restored
    if rank == 0:
        print(
            f"resume: {path} was written by {len(states)} process(es), this run has "
            f"{world}: RNG streams (dropout) are re-seeded, not restored"
        )
