"""A user's own dataset: a folder with `dataset.json`, `images/<split>/` and `masks/<split>/`.

    DATA/
      dataset.json        {"classes": [...], "palette": [[r, g, b], ...], "ignore_index": 255,
                           "label_values": {"raw value": class id, ...}}   (only classes required)
      images/train/**/<name>.<jpg|png|...>   (zoo.preprocess.IMAGE_EXTENSIONS, any case)
      masks/train/**/<name>.png              (same relative path, .png)
      images/val/..., masks/val/...

A mask is a single-channel 1-, 8- or 16-bit PNG of class ids (or of raw values mapped by
`label_values`), a palette-mode PNG whose indices are the class ids (Pascal VOC; 255 = ignore),
or an RGB PNG whose colours are matched exactly against `palette`. Every problem is a
`DatasetFileError` / `DatasetLayoutError` naming the file (and the value or colour).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image

from training.data.files import describe_missing
from training.data.io import open_image_file
from training.data.layouts import DatasetFileError, DatasetLayoutError
from zoo import preprocess
from zoo.datasets import IGNORE_INDEX, DatasetInfo, distinct_palette

SPEC_NAME = "dataset.json"
IMAGE_DIR, MASK_DIR = "images", "masks"
_LISTED = 5


def is_folder_dataset(root: str | Path) -> bool:
    """Whether `root` holds a `dataset.json` (a folder dataset)."""
    return (Path(root) / SPEC_NAME).is_file()


@dataclass(frozen=True)
class FolderSpec:
    """The validated `dataset.json` of a folder dataset."""

    info: DatasetInfo
    label_values: dict[int, int] = field(default_factory=dict)  # raw mask value -> class id
    palette_given: bool = False  # "palette" in dataset.json (else made: RGB masks cannot match)

    @property
    def num_classes(self) -> int:
        return self.info.num_classes


def _spec_error(path: Path, message: str) -> DatasetLayoutError:
    return DatasetLayoutError(f"{path}: {message}")


def read_spec(root: str | Path) -> FolderSpec:
    """Read and validate `root/dataset.json` (errors name the file and the key)."""
    path = Path(root) / SPEC_NAME
    if not path.is_file():
        raise DatasetLayoutError(
            f"{path} not found: a folder dataset needs a {SPEC_NAME} with at least "
            '{"classes": ["background", ...]}'
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # Notepad writes a BOM
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _spec_error(path, f"not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise _spec_error(path, "must hold a JSON object")
    unknown = sorted(data.keys() - {"name", "classes", "palette", "ignore_index", "label_values"})
    if unknown:
        raise _spec_error(path, f"unknown key(s) {', '.join(map(repr, unknown))}")
    classes = data.get("classes")
    if (
        not isinstance(classes, list)
        or not classes
        or not all(isinstance(c, str) and c for c in classes)
    ):
        raise _spec_error(path, f'"classes" must be a non-empty list of names, got {classes!r}')
    if len(set(classes)) != len(classes):
        repeated = sorted(c for c, n in Counter(classes).items() if n > 1)
        raise _spec_error(path, f'"classes" repeats {", ".join(map(repr, repeated))}')
    ignore = data.get("ignore_index", IGNORE_INDEX)
    if not isinstance(ignore, int) or isinstance(ignore, bool) or not 0 <= ignore <= 65535:
        raise _spec_error(path, f'"ignore_index" must be an int in 0..65535, got {ignore!r}')
    if ignore < len(classes):
        raise _spec_error(
            path, f'"ignore_index" {ignore} is a class id (there are {len(classes)} classes)'
        )
    palette = data.get("palette")
    if palette is None:
        palette = [list(color) for color in distinct_palette(len(classes))]
    elif (
        not isinstance(palette, list)
        or len(palette) != len(classes)
        or not all(
            isinstance(c, list)
            and len(c) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
            for c in palette
        )
    ):
        raise _spec_error(
            path, f'"palette" must list {len(classes)} [r, g, b] colours of ints 0..255'
        )
    elif len({tuple(c) for c in palette}) != len(palette):
        raise _spec_error(path, '"palette" repeats a colour, so RGB masks would be ambiguous')
    values = data.get("label_values", {})
    if not isinstance(values, dict):
        raise _spec_error(
            path,
            f'"label_values" must be a JSON object of raw mask value -> class id, e.g. '
            f'{{"38": 1}}; got {json.dumps(values)}',
        )
    label_values: dict[int, int] = {}
    for raw, target in values.items():
        if not re.fullmatch(r"[0-9]+", raw) or int(raw) > 65535:
            raise _spec_error(
                path,
                f'"label_values" key {json.dumps(raw)} is not a raw mask value: keys are the '
                'mask\'s pixel values 0..65535 written as JSON strings, e.g. {"38": 1}',
            )
        if not isinstance(target, int) or isinstance(target, bool):
            raise _spec_error(
                path,
                f'"label_values" maps "{raw}" to {json.dumps(target)}, which is not an integer: '
                f"map each raw value to a class id (0..{len(classes) - 1}) or the ignore "
                f'index {ignore}, e.g. {{"{raw}": 0}}',
            )
        if not (0 <= target < len(classes) or target == ignore):
            raise _spec_error(
                path,
                f'"label_values" maps {raw} to {target}, which is neither a class id '
                f"(0..{len(classes) - 1}) nor the ignore index {ignore}",
            )
        label_values[int(raw)] = target
    name = data.get("name", Path(root).resolve().name)
    info = DatasetInfo(
        name=str(name),
        title=str(name),
        classes=tuple(classes),
        palette=tuple((c[0], c[1], c[2]) for c in palette),
        ignore_index=ignore,
    )
    return FolderSpec(info, label_values, palette_given="palette" in data)


@dataclass(frozen=True)
class Pair:
    """An image and its mask; `name` is the relative path without the extension."""

    name: str
    image: Path
    mask: Path


def _listed(paths: list[Path]) -> str:
    more = f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else ""
    return ", ".join(str(p) for p in paths[:_LISTED]) + more


def splits(root: str | Path) -> list[str]:
    """The split folders under `root/images` (e.g. ["train", "val"])."""
    folder = Path(root) / IMAGE_DIR
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def find_pairs(root: str | Path, split: str) -> list[Pair]:
    """Image/mask pairs of `split`, sorted; raises if a folder is missing or empty, if an image
    has no mask or a mask no image, or if two images share a name."""
    root = Path(root)
    image_folder, mask_folder = root / IMAGE_DIR / split, root / MASK_DIR / split
    for folder in (image_folder, mask_folder):
        if not folder.is_dir():
            raise DatasetLayoutError(f"split {split!r}: {describe_missing(folder)}")
    images: dict[str, Path] = {}
    for path in sorted(image_folder.rglob("*")):
        if path.is_file() and preprocess.is_image_file(path):
            name = path.relative_to(image_folder).with_suffix("").as_posix()
            if name in images:
                raise DatasetLayoutError(
                    f"{images[name]} and {path} share the name {name!r}: one mask cannot "
                    "serve both; rename one"
                )
            images[name] = path
    masks: dict[str, Path] = {}
    not_png: dict[str, Path] = {}  # other image files among the masks (e.g. a .jpg)
    for path in sorted(mask_folder.rglob("*")):
        if path.is_file() and preprocess.is_image_file(path):
            name = path.relative_to(mask_folder).with_suffix("").as_posix()
            (masks if path.suffix.lower() == ".png" else not_png)[name] = path
    if not images:
        suffixes = "/".join(sorted(preprocess.IMAGE_EXTENSIONS))
        raise DatasetLayoutError(
            f"split {split!r} is empty: no {suffixes} images under {image_folder}"
        )
    problems = []
    if wrong := [not_png[n] for n in sorted((images.keys() - masks.keys()) & not_png.keys())]:
        problems.append(
            f"{len(wrong)} mask(s) not saved as .png: {_listed(wrong)}; masks must be .png "
            "(lossless: JPEG compression changes class ids); save them as .png"
        )
    if lonely := [images[n] for n in sorted(images.keys() - masks.keys() - not_png.keys())]:
        problems.append(f"{len(lonely)} image(s) without a mask ({mask_folder}): {_listed(lonely)}")
    if lonely := [masks[n] for n in sorted(masks.keys() - images.keys())]:
        problems.append(f"{len(lonely)} mask(s) without an image: {_listed(lonely)}")
    if problems:
        raise DatasetLayoutError(f"split {split!r}: " + "; ".join(problems))
    return [Pair(name, images[name], masks[name]) for name in sorted(images)]


def read_mask(path: str | Path, spec: FolderSpec) -> np.ndarray:
    """A mask file as int64 class ids (H, W), `spec.info.ignore_index` for ignored pixels."""
    return mask_to_ids(open_image_file(Path(path), "mask"), spec, str(path))


def mask_to_ids(image: Image.Image, spec: FolderSpec, path: str) -> np.ndarray:
    """A decoded mask (any supported mode) as int64 class ids; errors name `path`."""
    ignore = spec.info.ignore_index
    if image.mode in ("RGB", "RGBA"):
        if not spec.palette_given:
            rgb = np.asarray(image.convert("RGB"))
            grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
            hint = (
                " (its three channels are equal: a grey mask saved as RGB; "
                "Image.open(path).convert('L').save(path) makes it single-channel)"
                if grey
                else ""
            )
            raise DatasetFileError(
                f'RGB mask {path} needs a "palette" in {SPEC_NAME} (one [r, g, b] per class, in '
                "class order) to map its colours to classes; or save masks as single-channel "
                f'PNGs of class ids (raw values mapped by "label_values"){hint}'
            )
        rgb = np.asarray(image.convert("RGB"), dtype=np.int64)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        palette = np.asarray(spec.info.palette, np.int64)
        palette_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
        order = np.argsort(palette_codes)
        index = np.clip(np.searchsorted(palette_codes[order], codes), 0, len(order) - 1)
        found = palette_codes[order][index] == codes
        if not found.all():
            missing = np.unique(codes[~found])[:_LISTED]
            colours = [(int(c >> 16), int((c >> 8) & 255), int(c & 255)) for c in missing]
            raise DatasetFileError(
                f"RGB mask {path} has colour(s) {colours} that are not in the palette of "
                f"{SPEC_NAME}; every colour must be one class's palette entry"
            )
        return order[index].astype(np.int64)
    if image.mode not in ("1", "L", "P", "I;16", "I;16L", "I;16B", "I"):
        raise DatasetFileError(
            f"mask {path} has the image mode {image.mode!r}; expected a single-channel "
            "1/8/16-bit PNG of class ids, a palette PNG, or an RGB PNG in the dataset's palette"
        )
    raw = np.asarray(image).astype(np.int64)
    if spec.label_values:
        values, inverse = np.unique(raw, return_inverse=True)
        mapped = np.array([spec.label_values.get(int(v), -1) for v in values], np.int64)
        mapped[(mapped < 0) & (values == ignore)] = ignore
        if (mapped < 0).any():
            bad = values[mapped < 0][:_LISTED].tolist()
            raise DatasetFileError(
                f"mask {path} holds value(s) {bad} that are not in label_values of {SPEC_NAME} "
                f"and not the ignore index {ignore}"
            )
        return mapped[inverse.reshape(raw.shape)]
    bad_values = (raw >= spec.num_classes) & (raw != ignore)
    if bad_values.any():
        bad = np.unique(raw[bad_values])[:_LISTED].tolist()
        raise DatasetFileError(
            f"mask {path} holds value(s) {bad} that are neither a class id "
            f"(0..{spec.num_classes - 1}) nor the ignore index {ignore}; map raw values "
            f'with "label_values" in {SPEC_NAME}'
        )
    return raw


@dataclass
class SplitSummary:
    """What `check_folder_dataset` found in one split."""

    images: int = 0
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    class_pixels: np.ndarray | None = None
    ignored_pixels: int = 0

    def add(self, size: tuple[int, int], counts: np.ndarray, ignored: int) -> None:
        """Count one checked image (its size, per-class pixels and ignored pixels)."""
        self.images += 1
        self.sizes[size] += 1
        self.class_pixels = counts if self.class_pixels is None else self.class_pixels + counts
        self.ignored_pixels += ignored


def check_pair(pair: Pair, spec: FolderSpec) -> tuple[tuple[int, int], np.ndarray, int]:
    """Validate one pair (image readable, mask valid, same size): its size, per-class pixel
    counts and ignored pixels."""
    try:
        size = preprocess.read_image(pair.image).shape[:2]
    except (OSError, ValueError) as error:
        raise DatasetFileError(str(error)) from None
    mask = read_mask(pair.mask, spec)
    if mask.shape != size:
        raise DatasetFileError(
            f"image {pair.image} is {size[1]}x{size[0]} but its mask {pair.mask} is "
            f"{mask.shape[1]}x{mask.shape[0]} (width x height){_orientation_hint(pair, mask)}"
        )
    return (size, *class_counts(mask, spec))


def _orientation_hint(pair: Pair, mask: np.ndarray) -> str:
    """Why an image and its mask differ in size when the mask has the image's stored size: the
    image's EXIF orientation, which the readers apply."""
    with Image.open(pair.image) as image:
        stored, orientation = image.size, image.getexif().get(ExifTags.Base.Orientation, 1)
    turned = orientation in preprocess.TRANSPOSING_ORIENTATIONS
    if not turned or stored != (mask.shape[1], mask.shape[0]):
        return ""
    return (
        f"; the image is stored as {stored[0]}x{stored[1]}, but its EXIF orientation "
        f"({orientation}) turns it, as training and inference read it: turn the mask the same "
        "way, or, if it was drawn on the stored pixels, remove the image's orientation tag"
    )


def class_counts(mask: np.ndarray, spec: FolderSpec) -> tuple[np.ndarray, int]:
    """Pixels per class of a class-id mask, and its ignored pixels."""
    valid = mask[mask != spec.info.ignore_index]
    counts = np.bincount(valid.ravel(), minlength=spec.num_classes)
    return counts, int(mask.size - valid.size)


def check_folder_dataset(
    root: str | Path,
    required: tuple[str, ...] = (),
    on_pair: Callable[[], Any] | None = None,
) -> tuple[FolderSpec, dict[str, SplitSummary]]:
    """Validate every split of a folder dataset (every mask is read); raise on the first
    problem, naming the file. `required` splits must exist."""
    root = Path(root)
    spec = read_spec(root)
    found = splits(root)
    if not found:
        raise DatasetLayoutError(
            f"{root}: no split folders under {root / IMAGE_DIR} (expected e.g. images/train/, "
            "images/val/ with masks/train/, masks/val/)"
        )
    if missing := [s for s in required if s not in found]:
        raise DatasetLayoutError(
            f"{root}: split(s) {', '.join(missing)} missing; found {found or 'none'} under "
            f"{root / IMAGE_DIR}"
        )
    summaries: dict[str, SplitSummary] = {}
    for split in found:
        summary = SplitSummary()
        for pair in find_pairs(root, split):
            summary.add(*check_pair(pair, spec))
            if on_pair is not None:
                on_pair()
        summaries[split] = summary
    return spec, summaries


def format_summary(spec: FolderSpec, summaries: dict[str, SplitSummary]) -> str:
    """A short human-readable report of `check_folder_dataset`'s result."""
    lines = [f"dataset {spec.info.name!r}: {spec.num_classes} classes, ignore index "
             f"{spec.info.ignore_index}"]  # fmt: skip
    for split, summary in summaries.items():
        heights = [h for (h, _), n in summary.sizes.items() for _ in range(n)]
        widths = [w for (_, w), n in summary.sizes.items() for _ in range(n)]
        common, count = summary.sizes.most_common(1)[0]
        lines.append(
            f"  {split}: {summary.images} images; sizes {min(heights)}..{max(heights)} x "
            f"{min(widths)}..{max(widths)} (HxW; most common {common[0]}x{common[1]}, "
            f"{count} images)"
        )
        assert summary.class_pixels is not None
        total = int(summary.class_pixels.sum()) + summary.ignored_pixels
        shares = ", ".join(
            f"{name} {100 * n / total:.1f}%"
            for name, n in zip(spec.info.classes, summary.class_pixels.tolist(), strict=True)
        )
        lines.append(f"    pixels: {shares}, ignored {100 * summary.ignored_pixels / total:.1f}%")
        absent = [c for c, n in zip(spec.info.classes, summary.class_pixels, strict=True) if not n]
        if absent:
            lines.append(f"    classes absent from {split}: {', '.join(absent)}")
    return "\n".join(lines)
