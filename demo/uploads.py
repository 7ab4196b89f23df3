"""What a visitor uploads: read, checked and size-limited, with a clear error otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image, UnidentifiedImageError

from demo.errors import visitor_error
from zoo.preprocess import pil_to_rgb, resize_rgb, scaled_size

MAX_SIDE = 2048  # longer inputs are downscaled (with a note) before segmentation
MAX_PIXELS = 50_000_000  # refuse decoding anything larger (decompression bombs)
UNREADABLE = "not a known image format, or a damaged file (try PNG, JPEG, WebP, BMP or TIFF)."


def read_upload(path: str | None) -> tuple[np.ndarray, str]:
    """An uploaded file -> (RGB uint8 HxWx3, note); gr.Error for anything unreadable."""
    if not path:
        raise visitor_error("Upload an image first (or pick an example).")
    name = Path(path).name
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise visitor_error(
                    f"{name}: {width}x{height} is {width * height / 1e6:.0f} megapixels; "
                    f"the demo accepts up to {MAX_PIXELS / 1e6:.0f}."
                )
            image.load()
            rgb = pil_to_rgb(image)
    except gr.Error:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise visitor_error(f"{name} is not a readable image: {UNREADABLE}") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise visitor_error(f"{name} could not be decoded as an image: {error}") from None
    height, width = rgb.shape[:2]
    if max(height, width) <= MAX_SIDE:
        return rgb, ""
    size = scaled_size(height, width, MAX_SIDE)
    note = (
        f"Resized from {width}x{height} to {size[1]}x{size[0]} "
        f"(the demo's limit is {MAX_SIDE} px per side)."
    )
    return resize_rgb(rgb, size), note


def checked_image(**kwargs: Any) -> gr.Image:
    """A `gr.Image` whose unreadable uploads raise a `gr.Error` naming the file, instead of
    PIL's exception (which Gradio would hide behind a generic message). The check wraps the
    instance's `preprocess`: a `gr.Image` subclass would make Gradio write a `.pyi` stub
    next to its module."""
    image = gr.Image(**kwargs)
    preprocess = image.preprocess

    def checked(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception:  # PIL raises many types for non-images
            name = getattr(payload, "orig_name", None) or "the upload"
            raise visitor_error(f"{name} is not a readable image: {UNREADABLE}") from None

    image.preprocess = checked
    return image
