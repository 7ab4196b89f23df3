"""Finding image/label pairs of a dataset split on disk, with errors that say what is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from training.data.layouts import DatasetLayout, DatasetLayoutError

_LISTED = 5  # how many names an error message lists


@dataclass(frozen=True)
class Sample:
    """One image and its label; `train_ids` is True when the label is already converted."""

    stem: str
    image: Path
    label: Path
    train_ids: bool


def _listing(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    more = f", ... ({len(names)} entries)" if len(names) > _LISTED else ""
    shown = ", ".join(names[:_LISTED]) + more
    return f"{folder} contains: {shown or 'nothing'}"


def describe_missing(path: Path) -> str:
    """'P does not exist; A contains: ...' with A the deepest existing ancestor of `path`."""
    if path.exists():
        return f"{path} is not a folder"
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    missing = path
    while missing.parent != ancestor:
        missing = missing.parent
    if ancestor.is_dir():
        return f"{missing} does not exist; {_listing(ancestor)}"
    return f"{missing} does not exist; {ancestor} is not a folder"


def _unmatched(what: str, paths: list[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:_LISTED])
    more = f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else ""
    return f"{len(paths)} {what}: {shown}{more}"


def _stems(folder: Path, stem_glob: str, suffix: str) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix()[: -len(suffix)]: p
        for p in folder.glob(stem_glob + suffix)
        if p.is_file()
    }


def find_samples(layout: DatasetLayout, root: str | Path, split: str) -> list[Sample]:
    """All samples of `split` sorted by name, preferring converted labels over raw ones.

    Raises `DatasetLayoutError` when a folder is missing, the split is empty, or an image
    or a label has no partner.
    """
    root = layout.resolve_root(root)
    image_folder = layout.image_folder(root, split)
    label_folder = layout.label_folder(root, split)
    image_pattern = image_folder / (layout.stem_glob + layout.image_suffix)
    what = f"{layout.name} {split!r} split"
    if layout.root_subdir:
        what += f" (root: {layout.root_subdir} or the folder holding it)"
    if not image_folder.is_dir():
        raise DatasetLayoutError(
            f"{what}: expected images under {image_pattern}; {describe_missing(image_folder)}"
        )
    images = _stems(image_folder, layout.stem_glob, layout.image_suffix)
    if not images:
        raise DatasetLayoutError(
            f"{what}: expected images under {image_pattern}; found none; {_listing(image_folder)}"
        )
    raw = _stems(label_folder, layout.stem_glob, layout.label_suffix)
    converted = _stems(layout.trainid_folder(root, split), layout.stem_glob, layout.trainid_suffix)
    labels = raw | converted
    label_pattern = label_folder / (layout.stem_glob + layout.label_suffix)
    if not labels:
        where = describe_missing(label_folder) if not label_folder.is_dir() else "found none"
        raise DatasetLayoutError(f"{what}: expected labels under {label_pattern}; {where}")
    problems = []
    if lonely := sorted(images[s] for s in images.keys() - labels.keys()):
        problems.append(_unmatched(f"images without a label ({label_pattern})", lonely))
    if lonely := sorted(labels[s] for s in labels.keys() - images.keys()):
        problems.append(_unmatched(f"labels without an image ({image_pattern})", lonely))
    if problems:
        raise DatasetLayoutError(f"{what}: image/label pairs do not match: {'; '.join(problems)}")
    return [
        Sample(s, images[s], converted.get(s) or raw[s], s in converted) for s in sorted(images)
    ]
