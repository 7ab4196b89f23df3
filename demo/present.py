"""How the demo shows a result: the coloured overlay, the class shares, the runtime line."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pandas as pd

import zoo

SHARE_HEADERS = ["id", "class", "share %"]


def describe_runtime(segmenter: zoo.Segmenter) -> str:
    """'onnx on CPU (CPUExecutionProvider)' / 'torch on GPU (torch:cuda)'."""
    where = "GPU" if segmenter.device.startswith("cuda") else "CPU"
    return f"`{segmenter.backend_name}` on **{where}** ({', '.join(segmenter.providers)})"


def hex_color(rgb: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def annotated(
    rgb: np.ndarray, mask: np.ndarray, segmenter: zoo.Segmenter, opacity: float
) -> gr.AnnotatedImage:
    """The AnnotatedImage of a result: one layer per class present (largest first), coloured
    by the model's palette."""
    classes, palette = segmenter.classes, segmenter.palette
    present, counts = np.unique(mask, return_counts=True)
    ids = [int(i) for i in present[np.argsort(-counts, kind="stable")] if i < len(classes)]
    layers = [((mask == i).astype(np.float32) * opacity, classes[i]) for i in ids]
    colors = {classes[i]: hex_color(palette[i]) for i in ids}
    return gr.AnnotatedImage(value=(rgb, layers), color_map=colors)


def class_shares(mask: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Pixel share (%) of each class present, largest first."""
    counts = np.bincount(mask.ravel(), minlength=len(classes))
    rows = [
        (i, classes[i] if i < len(classes) else f"id {i}", round(100.0 * n / mask.size, 2))
        for i, n in enumerate(counts)
        if n
    ]
    rows.sort(key=lambda row: -row[2])
    return pd.DataFrame(rows, columns=SHARE_HEADERS)
