"""Gradio's image cache files, written atomically (issue 15.5)."""

from __future__ import annotations

import os
from pathlib import Path

from gradio import processing_utils
from PIL import Image

from zoo.fileio import write_bytes_atomic


def save_pil_to_cache_atomically(
    img: Image.Image, cache_dir: str, name: str = "image", format: str = "webp"
) -> str:
    """Gradio's `processing_utils.save_pil_to_cache` (same content-hash path), written
    atomically. Gradio 6.31 rewrites that file in place, so an identical answer computed at
    the same time truncated the file while another client downloaded it (issue 15.5)."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / f"{name}.{format}").resolve()
    try:
        if target.stat().st_size == len(data):  # the same answer, already written whole
            os.utime(target)  # Gradio's delete_cache ages files by ctime
            return str(target)
    except OSError:  # absent (or just deleted): write it
        pass
    write_bytes_atomic(target, data, fsync=False)  # a cache: atomic for readers is enough
    return str(target)


def use_atomic_cache_writes() -> None:
    """Route Gradio's image cache writes (the mask, the overlay's image and layers) through
    `save_pil_to_cache_atomically`; its other cache writers already write atomically."""
    processing_utils.save_pil_to_cache = save_pil_to_cache_atomically
