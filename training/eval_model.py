"""Evaluate a shipped model (a model directory, a registry id or `hf-hub:org/repo`) through the
runtime: `zoo.load(...)` and `Segmenter.predict`, so the accuracy measured is the one of the
file users run (ONNX fp32 / int8, OpenVINO, or the safetensors weights with torch).

The images go in as uint8 at their own size (`max_side=None`), as `zoo eval` of a checkpoint
runs them; the metric counts are `training.metrics.SegmentationMetrics`'.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.evaluate import git_commit, metrics_record
from training.metrics import SegmentationMetrics
from zoo.preprocess import slide_stride
from zoo.tta import TTA

__all__ = ["evaluate_model"]


def evaluate_model(
    name: str,
    data_root: str | Path,
    split: str = "val",
    backend: str = "auto",
    precision: str = "auto",
    device: str = "auto",
    revision: str | None = None,
    min_agreement: float | None = None,
    mode: str | None = None,
    tta: TTA | None = None,
    boundary_tolerance: int | str = 3,
    max_images: int = 0,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Evaluate the model `name` (as `zoo.load` takes it) on `split` of the data at
    `data_root`; returns the `eval.json` content (metrics with class names and confusion
    matrix, the backend / precision / file measured, the test-time augmentation).
    `min_agreement` lowers a reduced precision's gate, as in `zoo.load`."""
    import zoo
    from training.data import open_dataset

    tta = tta or TTA()
    segmenter = zoo.load(
        name,
        backend=backend,
        device=device,
        revision=revision,
        precision=precision,
        min_agreement=min_agreement,
        max_side=None,
        max_pixels=None,
    )
    config = segmenter.config
    mode = mode or config.recipe.get("eval_mode", "whole")
    dataset = open_dataset(
        config.recipe.get("dataset", config.dataset),
        data_root,
        split,
        None,  # uint8 images: the runtime normalises them
        image_column=config.recipe.get("image_column", "image"),
        mask_column=config.recipe.get("mask_column", "annotation"),
    )
    _check_classes(name, config.classes, data_root, getattr(dataset, "info", None))
    counts = SegmentationMetrics(config.num_classes, config.ignore_index, boundary_tolerance)
    total = min(len(dataset), max_images) if max_images else len(dataset)
    if total == 0:
        raise ValueError(f"--data-root {data_root}: the {split} split has no images")
    items: Iterable[Any] = (dataset[index] for index in range(total))
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="eval", total=total, dynamic_ncols=True)
    count = 0
    for image, mask in items:
        rgb = np.ascontiguousarray(np.asarray(image).transpose(1, 2, 0))
        pred = segmenter.predict(rgb, mode=mode, tta=tta)
        counts.update(torch.from_numpy(pred.astype(np.int64))[None], torch.as_tensor(mask)[None])
        count += 1
    metrics = metrics_record(counts.compute(), counts, config.classes)
    metrics["num_images"] = count
    model_file = _model_file(segmenter)
    window = list(config.input_size)
    return {
        "model": str(name),
        "model_id": config.model_id,
        "arch": config.arch,
        "dataset": config.dataset,
        "split": split,
        "metrics": metrics,
        "inference": {
            "mode": mode,
            "window": window if mode == "slide" else None,
            "stride": list(slide_stride(window)) if mode == "slide" else None,
            "flip": tta.flip,
            "scales": list(tta.scales),
            "backend": segmenter.backend_name,
            "precision": segmenter.precision,
            "providers": segmenter.providers,
            "selection": segmenter.selection,
        },
        "model_file": model_file,
        "model_file_sha256": _sha256(segmenter, model_file),
        "revision": segmenter.revision,
        "training_commit": config.source_commit,
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git_commit": git_commit(),
    }


def _check_classes(name: str, classes: list[str], root: str | Path, info: Any) -> None:
    """Refuse data whose class list is not the model's (ids would mean other classes)."""
    if info is None:
        return
    data_classes = list(info.classes)
    if len(data_classes) != len(classes):
        raise ValueError(
            f"{name} predicts {len(classes)} classes but the data at {root} has "
            f"{len(data_classes)} ({', '.join(data_classes[:5])}"
            f"{', ...' if len(data_classes) > 5 else ''}): evaluate on the model's dataset"
        )


def _model_file(segmenter: Any) -> str:
    """The file name of the model the segmenter runs (`zoo.backends.BACKENDS` row)."""
    from zoo.backends import BACKENDS

    return BACKENDS[segmenter.backend_name].files[segmenter.precision]


def _sha256(segmenter: Any, file_name: str) -> str | None:
    """The sha256 of the model file measured (None when it is not a local file)."""
    from zoo.fileio import file_sha256

    path = segmenter.model_dir / file_name if segmenter.model_dir is not None else None
    return file_sha256(path) if path is not None and path.is_file() else None
