"""Big inputs are bounded: a pixel limit checked from the header before decoding (library and
CLI), reduced-scale JPEG decoding, and lists with a bad image keep the good masks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

import zoo
from tests.helpers_modeldir import smooth_image
from zoo import preprocess
from zoo.errors import BatchPredictionError
from zoo.predict_cli import main as predict_main
from zoo.preprocess import MAX_IMAGE_PIXELS, ImageTooLargeError
from zoo.segmenter import Segmenter


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10000x10000 PNG of a few KB (1-bit, all black): 100 MP, twice the default limit."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("1", (10_000, 10_000)).save(path)
    return path


@pytest.fixture()
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to decode image data fails loudly: the limit must act on the header."""

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"decoded {self.size} although the header is over the limit")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_default_limit_is_the_demos() -> None:
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        pytest.skip("demo extra not installed")
    from demo.uploads import MAX_PIXELS

    assert MAX_IMAGE_PIXELS == 50_000_000
    assert MAX_PIXELS == MAX_IMAGE_PIXELS


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_png_fails_from_its_header(onnx_seg: Segmenter, huge_png: Path, no_decoding) -> None:
    assert huge_png.stat().st_size < 100_000
    with pytest.raises(ImageTooLargeError) as info:
        onnx_seg.predict(huge_png)
    message = str(info.value)
    assert str(huge_png) in message and "10000x10000" in message
    assert "100.0 megapixels" in message and "limit of 50 megapixels" in message


def test_the_limit_is_configurable(model_dir: Path, tmp_path: Path) -> None:
    image = smooth_image(40, 50, seed=1)  # 2000 pixels
    strict = zoo.load(model_dir, backend="onnx", device="cpu", max_pixels=1999)
    with pytest.raises(ImageTooLargeError, match=r"40x50|50x40"):
        strict.predict(image)
    Image.fromarray(image).save(tmp_path / "small.png")
    with pytest.raises(ImageTooLargeError) as info:
        strict.predict(tmp_path / "small.png")
    # a small limit in pixels, not "0.0 megapixels, over the limit of 0.001999 megapixels"
    assert "small.png: 50x40 is 2,000 pixels, over the limit of 1,999 pixels" in str(info.value)
    exact = zoo.load(model_dir, backend="onnx", device="cpu", max_pixels=2000)
    unlimited = zoo.load(model_dir, backend="onnx", device="cpu", max_pixels=None)
    expected = unlimited.predict(image)
    assert np.array_equal(exact.predict(image), expected)
    assert np.array_equal(exact.predict(tmp_path / "small.png"), expected)


def test_a_bad_image_in_a_list_keeps_the_good_masks(onnx_seg: Segmenter, tmp_path: Path) -> None:
    good = [smooth_image(48, 64, seed=s) for s in (1, 2)]
    expected = [onnx_seg.predict(image) for image in good]
    missing = tmp_path / "missing.png"
    with pytest.raises(BatchPredictionError) as info:
        onnx_seg.predict([good[0], missing, good[1]], batch_size=2)
    error = info.value
    assert isinstance(error, ValueError)  # callers catching ValueError keep working
    assert error.results[1] is None
    assert np.array_equal(error.results[0], expected[0])
    assert np.array_equal(error.results[2], expected[1])
    assert list(error.errors) == [1] and isinstance(error.errors[1], FileNotFoundError)
    assert "1 of 3" in str(error) and str(missing) in str(error)


def test_cli_refuses_a_huge_png_and_writes_the_others(
    model_dir: Path, huge_png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "huge.png").write_bytes(huge_png.read_bytes())
    Image.fromarray(smooth_image(48, 64, seed=3)).save(folder / "ok.png")
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = predict_main([str(folder), "--model", str(model_dir), "--out", str(out), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"skipped: {folder / 'huge.png'}: 10000x10000 is 100.0 megapixels" in err
    # PIL's own warning about the header would only repeat the message, less clearly
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert sorted(p.name for p in out.iterdir()) == ["ok.png"]
    # --max-pixels configures it: 0 lifts the limit, a small one refuses ok.png too
    code = predict_main(
        [str(folder / "ok.png"), "--model", str(model_dir), "--out", str(out), "--quiet",
         "--max-pixels", "1000"]
    )  # fmt: skip
    assert code == 1
    assert "ok.png: 64x48 is" in capsys.readouterr().err


def test_large_jpeg_is_decoded_at_reduced_scale(onnx_seg: Segmenter, tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    full = smooth_image(1600, 2000, seed=5)
    Image.fromarray(full).save(path, quality=95)
    decoded = preprocess.open_image(path, reduce_to=500)
    assert decoded.size == (1600, 2000)
    assert decoded.rgb.shape == (400, 500, 3)  # JPEG's 1/4 scale: the smallest >= 500 px
    full_decode = preprocess.open_image(path).rgb
    assert full_decode.shape == (1600, 2000, 3)
    # The same picture as decoding fully and downscaling (to within JPEG's rounding).
    resized = np.asarray(Image.fromarray(full_decode).resize((500, 400), Image.BILINEAR))
    difference = np.abs(decoded.rgb.astype(np.int16) - resized.astype(np.int16))
    assert difference.mean() < 1.5 and difference.max() <= 8
    assert onnx_seg.predict(path, max_side=500).shape == (1600, 2000)  # masks at the full size


def test_reduced_decoding_follows_exif_rotation(tmp_path: Path) -> None:
    image = Image.fromarray(smooth_image(1000, 2000, seed=6))
    exif = image.getexif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=90)
    decoded = preprocess.open_image(path, reduce_to=250)
    assert decoded.size == (2000, 1000)
    assert decoded.rgb.shape == (250, 125, 3)
