"""What the runtime tells its user: the Segmenter's repr, lists in predict_proba, the CLI's
downscaling note and its names for inputs with the same stem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from tests.helpers_modeldir import smooth_image
from zoo.errors import BatchPredictionError
from zoo.predict_cli import main as predict_main
from zoo.segmenter import Segmenter


def test_repr_names_what_was_loaded_and_the_precision(onnx_seg: Segmenter, model_dir: Path) -> None:
    text = repr(onnx_seg)
    assert text.startswith(f"Segmenter({str(model_dir)!r}, ")
    assert "backend='onnx'" in text and "precision='fp32'" in text and "device='cpu'" in text
    assert "revision=" not in text  # a local directory has no Hub commit


def test_predict_proba_takes_a_list(onnx_seg: Segmenter, tmp_path: Path) -> None:
    images = [smooth_image(48, 64, seed=1), smooth_image(48, 64, seed=2), smooth_image(30, 40)]
    singles = [onnx_seg.predict_proba(image) for image in images]
    many = onnx_seg.predict_proba(images, batch_size=2)
    assert isinstance(many, list) and len(many) == 3
    for single, batched in zip(singles, many, strict=True):
        assert batched.shape == single.shape
        np.testing.assert_allclose(batched, single, atol=1e-5)
    with pytest.raises(BatchPredictionError) as info:
        onnx_seg.predict_proba([images[0], tmp_path / "absent.png"])
    assert info.value.results[1] is None
    np.testing.assert_allclose(info.value.results[0], singles[0], atol=1e-5)


def test_cli_says_when_and_how_much_it_downscales(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(smooth_image(60, 90, seed=1)).save(folder / "wide.png")  # longer side 90
    Image.fromarray(smooth_image(30, 40, seed=2)).save(folder / "small.png")  # fits
    out = tmp_path / "out"
    argv = [str(folder), "--model", str(model_dir), "--out", str(out), "--max-side", "45"]
    assert predict_main([*argv, "-v"]) == 0
    err = capsys.readouterr().err
    assert f"{folder / 'wide.png'}: 90x60 processed at 45x30 (50%)" in err
    assert "small.png:" not in err  # not downscaled, not mentioned
    assert "1 image(s) were downscaled to a longer side of 45 px for the model (to 50%" in err
    assert "--max-side 0 processes at full size" in err
    assert Image.open(out / "wide.png").size == (90, 60)  # masks stay full size

    assert predict_main([*argv[:-2], "--max-side", "0"]) == 0
    assert "downscaled" not in capsys.readouterr().err
    full = zoo.load(model_dir, backend="onnx", device="cpu", max_side=None)
    assert np.array_equal(
        np.asarray(Image.open(out / "wide.png")), full.predict(folder / "wide.png")
    )


def test_cli_inputs_with_one_stem_get_distinct_documented_names(
    onnx_seg: Segmenter, model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(smooth_image(40, 60, seed=3)).save(folder / "a.png")
    Image.fromarray(smooth_image(40, 60, seed=4)).save(folder / "a.bmp")
    out = tmp_path / "out"
    assert predict_main([str(folder), "--model", str(model_dir), "--out", str(out), "--quiet"]) == 0
    # inputs in sorted order: a.bmp keeps "a", a.png gets its suffix appended
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_png.png"]
    assert np.array_equal(np.asarray(Image.open(out / "a.png")), onnx_seg.predict(folder / "a.bmp"))
    assert np.array_equal(
        np.asarray(Image.open(out / "a_png.png")), onnx_seg.predict(folder / "a.png")
    )
