"""Hugging Face `datasets` as segmentation data: a `save_to_disk` folder or a Hub dataset id.

    ds = HFSegmentationDataset("data/my_saved_dataset", "train")          # load_from_disk
    ds = HFSegmentationDataset("hf:scene_parse_150", "validation")         # load_dataset

Rows hold an image column and a mask column (defaults `image` / `annotation`, as in
`scene_parse_150`). Masks are read like folder-dataset masks (`training.data.folder`); the
class names come from a `dataset.json` in the saved folder (or the folder given as
`spec_root`), or from a `ClassLabel` mask feature. Needs `pip install "cpg-zoo[datasets]"`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from training.data.dataset import make_item
from training.data.folder import SPEC_NAME, FolderSpec, mask_to_ids, read_spec
from training.data.layouts import DatasetFileError, DatasetLayoutError
from zoo import preprocess
from zoo.datasets import DatasetInfo, distinct_palette

HF_PREFIX = "hf:"
SPLIT_ALIASES = {"val": ("val", "validation", "valid"), "train": ("train", "training")}


def is_hf_dataset(source: str | Path) -> bool:
    """`hf:<id>`, or a folder written by `Dataset(Dict).save_to_disk`."""
    text = str(source)
    folder = Path(text)
    return text.startswith(HF_PREFIX) or any(
        (folder / name).is_file() for name in ("dataset_dict.json", "state.json")
    )


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ImportError(
            'Hugging Face datasets need the datasets extra: pip install "cpg-zoo[datasets]"'
        ) from None
    return datasets


def load_split(source: str | Path, split: str) -> Any:
    """The `split` of a saved folder or Hub dataset (`val` also finds `validation`)."""
    datasets = _datasets()
    text = str(source)
    names = SPLIT_ALIASES.get(split, (split,))
    if text.startswith(HF_PREFIX):
        repo = text[len(HF_PREFIX) :]
        available = list(datasets.get_dataset_split_names(repo))
        chosen = next((n for n in names if n in available), None)
        if chosen is None:
            raise DatasetLayoutError(f"{text}: no {split!r} split; splits: {available}")
        return datasets.load_dataset(repo, split=chosen)
    loaded = datasets.load_from_disk(text)
    if isinstance(loaded, datasets.DatasetDict):
        chosen = next((n for n in names if n in loaded), None)
        if chosen is None:
            raise DatasetLayoutError(f"{text}: no {split!r} split; splits: {list(loaded)}")
        return loaded[chosen]
    return loaded  # a single saved Dataset serves every split asked for


def hf_spec(table: Any, mask_column: str, spec_root: str | Path | None) -> FolderSpec:
    """Classes of the dataset: `dataset.json` in `spec_root`, else a ClassLabel mask feature."""
    if spec_root is not None and (Path(spec_root) / SPEC_NAME).is_file():
        return read_spec(spec_root)
    names = getattr(table.features.get(mask_column), "names", None)
    if names:
        info = DatasetInfo(
            name=str(table.info.dataset_name or "hf"),
            title=str(table.info.dataset_name or "hf"),
            classes=tuple(names),
            palette=distinct_palette(len(names)),
        )
        return FolderSpec(info)
    where = f" in {spec_root}" if spec_root is not None else ""
    raise DatasetLayoutError(
        f"no class names for this dataset: put a {SPEC_NAME} "
        f'({{"classes": [...]}}){where} (the folder given as the spec root)'
    )


class HFSegmentationDataset(Dataset):
    """A split of a `datasets` dataset, with the items of `SegmentationDataset`."""

    def __init__(
        self,
        source: str | Path,
        split: str,
        transform: Any = None,
        image_column: str = "image",
        mask_column: str = "annotation",
        spec_root: str | Path | None = None,
    ) -> None:
        self.source, self.split, self.transform = str(source), split, transform
        self.table = load_split(source, split)
        missing = [c for c in (image_column, mask_column) if c not in self.table.column_names]
        if missing:
            raise DatasetLayoutError(
                f"{source}: column(s) {missing} not found; columns: {self.table.column_names} "
                "(set image_column= / mask_column=)"
            )
        if len(self.table) == 0:
            raise DatasetLayoutError(f"{source}: split {split!r} is empty")
        self.image_column, self.mask_column = image_column, mask_column
        if spec_root is None and not self.source.startswith(HF_PREFIX):
            spec_root = self.source
        self.spec = hf_spec(self.table, mask_column, spec_root)
        self.info: DatasetInfo = self.spec.info

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> Any:
        row = self.table[index]
        where = f"{self.source} [{self.split}] row {index}"
        try:
            image = preprocess.pil_to_rgb(row[self.image_column])
        except (OSError, ValueError, AttributeError) as error:
            raise DatasetFileError(f"cannot read the image of {where}: {error}") from None
        mask = mask_to_ids(row[self.mask_column], self.spec, where)
        return make_item(image, mask, f"of {where}", f"of {where}", self.transform)
