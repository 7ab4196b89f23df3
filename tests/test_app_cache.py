"""The demo's image cache writes (Gradio's `save_pil_to_cache`, replaced by an atomic one)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

app = pytest.importorskip("app", reason="the demo extra (gradio) is not installed")


def test_cache_write_is_whole_readable_and_reused(tmp_path: Path) -> None:
    image = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    first = Path(app.save_pil_to_cache_atomically(image, str(tmp_path), format="png"))
    again = Path(app.save_pil_to_cache_atomically(image, str(tmp_path), format="png"))
    (tmp_path / "plain.txt").write_text("")  # the mode `open()` gives in this process
    assert again == first and first.name == "image.png"
    with Image.open(io.BytesIO(first.read_bytes())) as decoded:
        assert np.array_equal(np.asarray(decoded), np.asarray(image))
    plain_mode = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert first.stat().st_mode & 0o777 == plain_mode  # not mkstemp's 0600
    assert [p.name for p in first.parent.iterdir()] == ["image.png"]  # no temp files left
