"""What the page's events call: `/segment`, `/load_model` and the overlay's redraw. Nothing is
kept on the server between calls but the model cache."""

from __future__ import annotations

import time

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from demo.errors import visitor_error
from demo.models import get_segmenter
from demo.present import annotated, class_shares, describe_runtime
from demo.uploads import read_upload
from zoo.eval_record import describe_model


def load_model(name: str, backend: str) -> str:
    """Load (or reuse) a model; a status line for the page, with a warning if unavailable."""
    try:
        segmenter = get_segmenter(name, backend)
    except gr.Error as error:
        gr.Warning(error.message)
        return f"**Model not available:** {error.message}"
    return (
        f"Model `{name}` ready: {describe_runtime(segmenter)}, {segmenter.num_classes} classes."
        f"\n\n**About:** {describe_model(segmenter)}"
    )


def segment(
    image: str | None, model: str, backend: str
) -> tuple[Image.Image, pd.DataFrame, str, tuple[str, str]]:
    """Segment one image: class-id mask (palette PNG), class shares, info text (timing,
    device, resize note), and the (model, backend) that made the mask."""
    rgb, note = read_upload(image)
    segmenter = get_segmenter(model, backend)
    start = time.perf_counter()
    try:
        mask = segmenter.predict(rgb)
    except (ValueError, RuntimeError) as error:
        raise visitor_error(f"Segmentation failed: {error}") from None
    seconds = time.perf_counter() - start
    height, width = mask.shape
    info = (
        f"**Inference:** {seconds * 1000:.0f} ms for {width}x{height} px with `{model}`, "
        f"{describe_runtime(segmenter)}."
    )
    if note:
        info += f"\n\n**Note:** {note}"
    shares = class_shares(mask, segmenter.classes)
    return segmenter.mask_image(mask), shares, info, (model, backend)


def draw_overlay(
    image: str | None, mask: Image.Image | None, made_by: tuple[str, str] | None, opacity: float
) -> gr.AnnotatedImage:
    """The overlay of the shown mask on its image at `opacity` (no new inference; nothing is
    kept on the server between calls)."""
    if image is None or mask is None or not made_by:
        return gr.AnnotatedImage(value=None)
    rgb, _ = read_upload(image)
    ids = np.asarray(mask)
    if ids.shape != rgb.shape[:2]:  # the image changed since; its own result is on its way
        return gr.skip()
    return annotated(rgb, ids, get_segmenter(*made_by), opacity)
