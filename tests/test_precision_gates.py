"""Precision gates read each calibration frame once (the masks' frames are the calibration's)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export import precision_gates
from zoo.loading import PACKAGED_MODELS_DIR

BUILTIN = PACKAGED_MODELS_DIR / "lraspp_mbv3_synthcity_cpg"


def test_each_frame_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    names = ["a.png", "b.jpg", "c.png"]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(frames / name)
    opened: Counter[str] = Counter()
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(fp, str | Path) and Path(fp).parent == frames:
            opened[Path(fp).name] += 1
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    # fp32 measured against itself: the built-in model directory is only read
    monkeypatch.setattr(precision_gates, "reduced_paths", lambda _: [("onnx", "fp32")])
    monkeypatch.setitem(precision_gates.GATES, "fp32", 1.0)
    figures = precision_gates.measure_agreement(BUILTIN, frames, num_threads=1)
    assert figures["onnx/fp32"]["frames"] == 3 and figures["onnx/fp32"]["size"] == [32, 48]
    assert figures["onnx/fp32"]["argmax_agreement"] == 1.0
    assert opened == Counter({name: 1 for name in names})


def test_cli_refuses_bad_inputs_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder that is no model directory, a frames folder without images and --limit 0 are
    argparse errors (exit 2, the problem named), not tracebacks."""
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ([str(empty), str(empty)], "config.json"),
        ([str(BUILTIN), str(empty)], "no images found"),
        ([str(BUILTIN), str(empty), "--limit", "0"], "--limit"),
    ]
    for argv, named in cases:
        with pytest.raises(SystemExit) as exit_info:
            precision_gates.main(argv)
        assert exit_info.value.code == 2
        assert named in capsys.readouterr().err


def test_help_describes_the_gates_in_a_whole_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        precision_gates.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "serving path of a model directory agrees with fp32" in help_text
