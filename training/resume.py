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


def check_same_classes(path: Path, saved: dict[str, Any], config: dict[str, Any]) -> None:
    """ValueError when the data's classes (names and order) or ignore index differ from those
    checkpoint `path` (its config `saved`) was trained with: resuming would silently give
    its class ids other meanings."""
    before, now = saved.get("classes"), config["classes"]
    if before != now:
        if not isinstance(before, list) or len(before) != len(now):
            count = len(before) if isinstance(before, list) else "unknown"
            change = f"it has {count} classes, the data {len(now)}"
        else:
            i = next(i for i, (a, b) in enumerate(zip(before, now, strict=True)) if a != b)
            change = f"its class {i} is {before[i]!r}, the data's is {now[i]!r}"
        raise ValueError(
            f"cannot resume from {path}: the data's classes differ from the run's ({change}); "
            "a run keeps its classes: restore them in dataset.json, or start a new run "
            f"(another --out) that fine-tunes from it with init={path}"
        )
    if saved.get("ignore_index") != config["ignore_index"]:
        raise ValueError(
            f"cannot resume from {path}: its ignore index is {saved.get('ignore_index')!r}, "
            f"the data's is {config['ignore_index']!r}"
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
