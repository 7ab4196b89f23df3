"""Inputs of `zoo predict`: files, folders (recursive, image suffixes) and globs, expanded
into jobs, each with the output name it writes under `--out`.

Output names: `<relative path without suffix>.png`. When two inputs would get the same name
(`a.jpg` and `a.png` in one folder), the first keeps it and each later one gets its suffix
appended (`a_png.png`), then a counter (`a_2.png`) if that is taken too; nothing is
overwritten (with `--overlay-format png`, an input `a_overlay.png` is renamed so as not to
take `a.png`'s overlay name).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from zoo.preprocess import is_image_file

__all__ = ["Job", "collect_inputs"]


@dataclass(frozen=True)
class Job:
    """One input image and where its outputs go (relative to --out, without suffix)."""

    path: Path
    relative: Path


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder)


def collect_inputs(
    inputs: list[str], exclude: Path | None = None, png_overlays: bool = False
) -> tuple[list[Job], list[str]]:
    """Expand files, folders (recursive, image extensions) and globs into jobs.

    Returns the jobs (first occurrence of each file wins) and messages for inputs that
    matched nothing. Files under `exclude` (the output folder) are skipped. `png_overlays`:
    each job also writes `<name>_overlay.png`, a name no other job's mask may take.
    """
    exclude = exclude.resolve() if exclude is not None else None
    jobs: list[Job] = []
    problems: list[str] = []
    seen: set[Path] = set()

    def add(path: Path, relative: Path) -> None:
        key = path.resolve()
        if key not in seen and not _inside(path, exclude):
            seen.add(key)
            jobs.append(Job(path, relative.with_suffix("")))

    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
            for file in found:
                add(file, file.relative_to(path))
            if not found:
                problems.append(f"{item}: no images found in this folder")
        elif path.is_file():
            add(path, Path(path.name))
        elif glob.has_magic(item):
            base = _glob_base(item)
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            files = [p for p in matches if p.is_file()]
            for file in files:
                relative = file.relative_to(base) if file.is_relative_to(base) else file.name
                add(file, Path(relative))
            if not files:
                problems.append(f"{item}: no file matches this pattern")
        else:
            problems.append(f"{item}: no such file or folder")
    return _deduplicate_names(jobs, png_overlays), problems


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).expanduser().parts
    base: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def _deduplicate_names(jobs: list[Job], png_overlays: bool = False) -> list[Job]:
    """`a.jpg` and `a.png` in one folder would both write `a.png`: suffix the later ones.
    With `png_overlays`, `a_overlay.png` is a's overlay, so an input `a_overlay.*` is
    renamed too (and the other way round)."""
    taken: set[Path] = set()

    def names(relative: Path) -> list[Path]:
        overlay = relative.with_name(f"{relative.name}_overlay")
        return [relative, overlay] if png_overlays else [relative]

    def free(relative: Path) -> bool:
        return not any(name in taken for name in names(relative))

    unique = []
    for job in jobs:
        relative = job.relative
        if not free(relative):
            relative = relative.with_name(f"{relative.name}_{job.path.suffix.lstrip('.')}")
            index = 2
            while not free(relative):
                relative = job.relative.with_name(f"{job.relative.name}_{index}")
                index += 1
        taken.update(names(relative))
        unique.append(Job(job.path, relative))
    return unique
