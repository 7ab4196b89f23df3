"""cpg-zoo: semantic segmentation models trained with the CPG boundary loss.

`import zoo` stays light (no torch): the ONNX Runtime path is what production installs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.datasets import DATASETS, DatasetInfo, get_dataset_info
from zoo.registry import MODELS, ModelSpec, get_spec, list_models

if TYPE_CHECKING:
    from zoo.segmenter import Segmenter

__version__ = "0.1.0"
__all__ = [
    "DATASETS",
    "MODELS",
    "DatasetInfo",
    "ModelSpec",
    "__version__",
    "get_dataset_info",
    "get_spec",
    "list_models",
    "load",
]


def load(name: str, **kwargs: Any) -> Segmenter:
    """Load a model by registry id, `hf-hub:org/repo@rev` or local directory (see zoo.loading)."""
    from zoo.loading import load as _load

    return _load(name, **kwargs)
