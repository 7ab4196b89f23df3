"""Shared by the demo's tests (`test_app*.py`, `test_browser.py`): the example images, the
CI flag and the test model."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "zoo" / "assets" / "examples").glob("*.png"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def build_test_model(base: Path) -> Path:
    """A 19-class SynthCity LRASPP model directory (BN-calibrated random weights), built once
    per pytest session under `base`."""
    directory = base / "app_model"
    if (directory / "config.json").is_file():
        return directory
    from helpers_modeldir import make_model_dir

    from zoo.config import ModelConfig

    work = base / "app_model.partial"
    make_model_dir(work, num_classes=19, dataset="synthcity", input_size=(256, 512))
    config = ModelConfig.for_dataset(
        "lraspp_mbv3", "synthcity", input_size=[256, 512], model_id="test_lraspp_synthcity"
    )
    config.save(work)  # real class names and palette
    work.rename(directory)
    return directory
