"""What a wrong kind of image input is told: the message fits what was passed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from zoo.segmenter import Segmenter

BUILT_IN = Path(zoo.__file__).parent / "assets" / "models" / "lraspp_mbv3_synthcity_cpg"


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return zoo.load(str(BUILT_IN), backend="onnx")


def test_a_list_to_a_one_image_method_is_told_it_takes_one(
    segmenter: Segmenter, tmp_path: Path
) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (8, 6)).save(path)
    for call in (
        lambda: segmenter.predict_logits([str(path)]),
        lambda: segmenter.overlay([str(path)], np.zeros((6, 8), np.uint8)),
    ):
        with pytest.raises(TypeError) as error:
            call()
        message = str(error.value)
        assert message.startswith("unsupported image input list;")
        assert "this takes one image; Segmenter.predict and predict_proba take a list" in message
        assert "several images go in as a list" not in message


def test_file_bytes_are_told_how_to_open_them(segmenter: Segmenter, tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (8, 6)).save(path)
    with pytest.raises(TypeError) as error:
        segmenter.predict(path.read_bytes())
    assert "unsupported image input bytes" in str(error.value)
    assert "PIL.Image.open(io.BytesIO(data))" in str(error.value)
    assert "several images go in as a list" not in str(error.value)


def test_a_url_is_named_as_given_and_not_fetched(segmenter: Segmenter) -> None:
    url = "https://example.com/street.png"
    with pytest.raises(FileNotFoundError) as error:
        segmenter.predict(url)
    expected = f"image file not found: {url}; URLs are not downloaded: fetch the file first"
    assert str(error.value) == expected


def test_numpy_integers_are_sizes_and_booleans_are_not(segmenter: Segmenter) -> None:
    """np.int64 (e.g. from arr.shape arithmetic) was refused as 'not a positive int', and
    max_side=True ran images at 1 pixel."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    expected = segmenter.predict(image, max_side=16)
    masks = segmenter.predict([image, image], batch_size=np.int64(2), max_side=np.int64(16))
    assert all(np.array_equal(mask, expected) for mask in masks)
    for setting in ({"batch_size": True}, {"max_side": True}):
        with pytest.raises(ValueError, match="must be a positive int"):
            segmenter.predict(image, **setting)
    with pytest.raises(ValueError, match="max_pixels must be a positive int or None, got True"):
        zoo.load(str(BUILT_IN), backend="onnx", max_pixels=True)


def test_a_32_bit_integer_image_is_refused_and_premultiplied_grey_reads(tmp_path: Path) -> None:
    """An 'I' image (int32 values, range unknown) was divided by 257 as if 16-bit: 0..255
    came out black. It is refused like an int32 array; an 'La' image reads as its LA form."""
    from zoo.preprocess import read_image, to_rgb

    values = np.arange(0, 240, 20, dtype=np.int32).reshape(3, 4)
    with pytest.raises(ValueError, match=r"'I' mode"):
        to_rgb(Image.fromarray(values))
    Image.fromarray(values).save(tmp_path / "i32.tif")
    with pytest.raises(ValueError, match=r"i32\.tif: 32-bit integer \('I' mode\)"):
        read_image(tmp_path / "i32.tif")
    sixteen = (values.astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "g16.png")  # 16-bit PNG: read, scaled to 8 bits
    assert np.array_equal(read_image(tmp_path / "g16.png")[..., 0], values.astype(np.uint8))

    grey = np.full((3, 4, 2), (90, 255), np.uint8)
    premultiplied = Image.fromarray(grey, "LA").convert("La")
    assert np.array_equal(to_rgb(premultiplied), np.full((3, 4, 3), 90, np.uint8))


def test_channel_first_arrays_and_tensors_are_told_how_to_pass() -> None:
    """A CxHxW array or a torch tensor (what a data loader yields) is told the conversion, and
    the conversion given works: the same mask as the HxWxC image."""
    import torch

    from zoo.preprocess import to_rgb

    rgb = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    channel_first = rgb.transpose(2, 0, 1)
    with pytest.raises(ValueError, match=r"channel-first CxHxW array goes in as") as info:
        to_rgb(channel_first)
    assert "array.transpose(1, 2, 0)" in str(info.value)
    assert np.array_equal(to_rgb(channel_first.transpose(1, 2, 0)), rgb)
    tensor = torch.from_numpy(channel_first.astype(np.float32) / 255)
    with pytest.raises(TypeError, match=r"torch tensor CxHxW in \[0, 1\] goes in as") as info:
        to_rgb(tensor)
    hinted = str(info.value).split("goes in as ", 1)[1]  # the expression, run as written
    assert np.array_equal(to_rgb(eval(hinted, {"t": tensor})), rgb)
