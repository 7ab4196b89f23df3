"""The datasets a recipe trains and validates on, with the recipe's transforms."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from training.recipes import Recipe


def build_datasets(recipe: Recipe, data_root: str | Path) -> tuple[Dataset, Dataset]:
    """Train split (random scale/crop/flip/jitter) and val split (normalise only) of the data
    at `data_root`: the recipe's benchmark layout, or a user's own dataset
    (`training.data.open_dataset`)."""
    from training.data import open_dataset
    from training.transforms import eval_transforms, train_transforms

    columns = {"image_column": recipe.image_column, "mask_column": recipe.mask_column}
    train_set = open_dataset(recipe.dataset, data_root, "train", **columns)
    val_set = open_dataset(recipe.dataset, data_root, "val", **columns)
    info = train_set.info
    train_set.transform = train_transforms(
        recipe.crop_size, info.mean, info.std, recipe.scale_range, info.ignore_index
    )
    val_set.transform = eval_transforms(info.mean, info.std)
    return train_set, val_set
