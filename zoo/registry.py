"""The model registry: ids `{arch}_{dataset}_{loss}` and their specs.

Derived from the tables: every published architecture (`zoo.archs`) x every published
dataset (`zoo.datasets`) x both losses, 18 ids. The Hub namespace is set here, once;
`CPG_ZOO_HUB_NAMESPACE` overrides it.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

from zoo.archs import ARCHITECTURES, published_archs
from zoo.datasets import DatasetInfo, get_dataset_info, published_datasets
from zoo.lookup import lookup

DEFAULT_HUB_NAMESPACE = "cpg-zoo"
HUB_NAMESPACE_ENV = "CPG_ZOO_HUB_NAMESPACE"

# Title of every architecture (published or not), for cards and listings.
ARCHS: dict[str, str] = {name: arch.title for name, arch in ARCHITECTURES.items()}
LOSSES: dict[str, str] = {
    "ce": "cross-entropy baseline",
    "cpg": "cross-entropy + CPG boundary loss",
}
# Training crop (height, width) per published dataset; also the default inference window.
INPUT_SIZES: dict[str, tuple[int, int]] = {
    name: get_dataset_info(name).crop_size for name in published_datasets()
}


def hub_namespace() -> str:
    """The Hub organisation the registry ids resolve to."""
    return os.environ.get(HUB_NAMESPACE_ENV, DEFAULT_HUB_NAMESPACE)


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry."""

    arch: str
    dataset: str
    loss: str

    @property
    def id(self) -> str:
        """`{arch}_{dataset}_{loss}`."""
        return f"{self.arch}_{self.dataset}_{self.loss}"

    @property
    def input_size(self) -> tuple[int, int]:
        """Default (height, width): the dataset's training crop."""
        return self.dataset_info.crop_size

    @property
    def dataset_info(self) -> DatasetInfo:
        """Class names, palette, mean/std of the dataset."""
        return get_dataset_info(self.dataset)

    @property
    def num_classes(self) -> int:
        """Number of classes of the dataset."""
        return self.dataset_info.num_classes

    @property
    def hub_repo(self) -> str:
        """Hub repo id `<namespace>/<id>` (namespace: CPG_ZOO_HUB_NAMESPACE or cpg-zoo)."""
        return f"{hub_namespace()}/{self.id}"


MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        ModelSpec(arch, dataset, loss)
        for arch in published_archs()
        for dataset in published_datasets()
        for loss in LOSSES
    )
}


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registry ids, optionally filtered by a shell-style pattern (`"*cityscapes*"`)."""
    ids = sorted(MODELS)
    if pattern is None:
        return ids
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    return [model_id for model_id in ids if fnmatch.fnmatchcase(model_id, pattern)]


def get_spec(model_id: str) -> ModelSpec:
    """The spec of `model_id`; an unknown id lists the valid ones."""
    return lookup(MODELS, model_id, "model id", "ids")
