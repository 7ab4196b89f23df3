"""cpg-zoo: semantic segmentation models trained with the CPG boundary loss.

`import zoo` stays light (numpy and Pillow; no torch, no ONNX Runtime until a model is
loaded): the ONNX Runtime path is what production installs.
"""

from __future__ import annotations

import importlib.metadata

from zoo.availability import list_models
from zoo.datasets import DATASETS, DatasetInfo, get_dataset_info
from zoo.loading import load
from zoo.registry import MODELS, ModelSpec, get_spec
from zoo.segmenter import Segmenter

try:  # the version pyproject.toml gives the installed distribution
    __version__ = importlib.metadata.version("cpg-zoo")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
__all__ = [
    "DATASETS",
    "MODELS",
    "DatasetInfo",
    "ModelSpec",
    "Segmenter",
    "__version__",
    "get_dataset_info",
    "get_spec",
    "list_models",
    "load",
]
