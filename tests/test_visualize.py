"""`Segmenter.colorize` / `zoo.visualize.colorize`: ids that are not classes are black."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import zoo
from zoo import visualize

BUILT_IN = Path(zoo.__file__).parent / "assets" / "models" / "lraspp_mbv3_synthcity_cpg"


def test_negative_and_out_of_range_ids_are_black() -> None:
    palette = json.loads((BUILT_IN / "config.json").read_text())["palette"]
    segmenter = zoo.load(str(BUILT_IN), backend="onnx")
    mask = np.array([[0, -1, 1, -100, 255, 1000]], np.int64)
    black = [0, 0, 0]
    expected = [[palette[0], black, palette[1], black, black, black]]
    assert segmenter.colorize(mask).tolist() == expected


def test_ids_past_a_large_palette_are_black() -> None:
    palette = [[index % 256, 7, 9] for index in range(300)]  # more classes than 256
    lut = visualize.palette_lut(palette, 300)
    colours = visualize.colorize(np.array([[299, 300, -1]], np.int32), lut)
    assert colours.tolist() == [[[299 % 256, 7, 9], [0, 0, 0], [0, 0, 0]]]
