"""The datasets a recipe trains and validates on, with the recipe's transforms."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from training.recipes import Recipe


def check_recipe_matches_data(recipe: Recipe, data_root: str | Path) -> None:
    """ValueError when a recipe of a benchmark dataset (e.g. `*_synthcity_*`) is given a data
    root holding a user's own dataset (`dataset.json` or a Hugging Face dataset): its run would
    train the user's classes under the benchmark's name."""
    from training.data.folder import is_folder_dataset
    from training.data.hf import is_hf_dataset
    from zoo.datasets import CUSTOM

    if recipe.dataset == CUSTOM:
        return
    kind = (
        "a Hugging Face dataset" if is_hf_dataset(data_root)
        else "a custom dataset (dataset.json)" if is_folder_dataset(data_root)
        else None
    )  # fmt: skip
    if kind is not None:
        raise ValueError(
            f"recipe {recipe.name} is for dataset {recipe.dataset}, but --data-root "
            f"{data_root} holds {kind}: train on it with --arch {recipe.arch} "
            f"[init={recipe.name}] (README 'Your own data')"
        )


def build_datasets(recipe: Recipe, data_root: str | Path) -> tuple[Dataset, Dataset]:
    """Train split (random scale/crop/flip/jitter) and val split (normalise only) of the data
    at `data_root`: the recipe's benchmark layout, or a user's own dataset
    (`training.data.open_dataset`)."""
    from training.data import open_dataset
    from training.transforms import eval_transforms, train_transforms

    check_recipe_matches_data(recipe, data_root)
    columns = {"image_column": recipe.image_column, "mask_column": recipe.mask_column}
    train_set = open_dataset(recipe.dataset, data_root, "train", **columns)
    val_set = open_dataset(recipe.dataset, data_root, "val", **columns)
    info = train_set.info
    train_set.transform = train_transforms(
        recipe.crop_size, info.mean, info.std, recipe.scale_range, info.ignore_index
    )
    val_set.transform = eval_transforms(info.mean, info.std)
    return train_set, val_set
