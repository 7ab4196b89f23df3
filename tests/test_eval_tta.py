"""Test-time augmentation (`zoo.tta`, `Segmenter.predict(..., tta=...)`,
`training.evaluate.predict_logits(..., scales=...)`) against computations written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.helpers_modeldir import smooth_image
from zoo.segmenter import Segmenter
from zoo.tta import TTA, tta_logits

NUM_CLASSES = 4


def _resize_back(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (half-pixel) resize with torch: an implementation independent of zoo's."""
    tensor = torch.from_numpy(np.ascontiguousarray(logits))[None]
    return F.interpolate(tensor, size, mode="bilinear", align_corners=False)[0].numpy()


def _expected_tta(seg: Segmenter, rgb: np.ndarray, scales: list[float]) -> np.ndarray:
    """Resize the image (PIL bilinear), run one plain pass, flip back, resize the logits back
    (torch), average over scales and flips."""
    height, width = rgb.shape[:2]
    outputs = []
    for scale in scales:
        size = (int(height * scale + 0.5), int(width * scale + 0.5))
        view = np.asarray(Image.fromarray(rgb).resize(size[::-1], Image.Resampling.BILINEAR))
        for flip in (False, True):
            pass_input = np.ascontiguousarray(view[:, ::-1]) if flip else view
            logits = seg.predict_logits(pass_input, max_side=None)
            assert logits.shape[1:] == size
            if flip:
                logits = logits[:, :, ::-1]
            outputs.append(_resize_back(logits, (height, width)))
    return np.mean(outputs, axis=0)


def test_plain_tta_equals_plain_prediction(onnx_seg: Segmenter) -> None:
    rgb = smooth_image(70, 110, seed=4)
    plain = onnx_seg.predict_logits(rgb, max_side=None)
    one_pass = tta_logits(lambda view: onnx_seg.predict_logits(view, max_side=None), rgb, TTA())
    assert np.array_equal(one_pass, plain)
    assert np.array_equal(onnx_seg.predict_logits(rgb, tta=TTA((1.0,))), plain)
    assert np.array_equal(onnx_seg.predict(rgb, tta=TTA(scales=[1])), onnx_seg.predict(rgb))


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_tta_logits_equal_an_independent_computation(
    backend: str, onnx_seg: Segmenter, torch_seg: Segmenter
) -> None:
    seg = onnx_seg if backend == "onnx" else torch_seg
    rgb = smooth_image(66, 100, seed=7)
    got = seg.predict_logits(rgb, max_side=None, tta=TTA((0.75, 1.5), flip=True))
    expected = _expected_tta(seg, rgb, [0.75, 1.5])
    assert got.shape == (NUM_CLASSES, 66, 100)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    plain = seg.predict_logits(rgb, max_side=None)
    assert np.abs(got - plain).max() > 1e-2, "augmented passes must change the logits"
    mask = seg.predict(rgb, max_side=None, tta=TTA((0.75, 1.5), flip=True))
    assert np.array_equal(mask, expected.argmax(0))


def test_tta_runs_each_scale_with_sliding_windows(onnx_seg: Segmenter) -> None:
    rgb = smooth_image(100, 150, seed=8)  # windows of 64x96 at both scales
    got = onnx_seg.predict_logits(rgb, mode="slide", tta=TTA((0.8, 1.2)))
    expected = []
    for scale in (0.8, 1.2):
        size = (int(100 * scale + 0.5), int(150 * scale + 0.5))
        view = np.asarray(Image.fromarray(rgb).resize(size[::-1], Image.Resampling.BILINEAR))
        slid = onnx_seg.predict_logits(view, mode="slide")
        expected.append(_resize_back(slid, (100, 150)))
    np.testing.assert_allclose(got, np.mean(expected, axis=0), atol=1e-4)


def test_tta_onnx_and_torch_agree(onnx_seg: Segmenter, torch_seg: Segmenter) -> None:
    tta = TTA((0.5, 1.25), flip=True)
    for seed in range(2):
        rgb = smooth_image(80, 120, seed=20 + seed)
        a, b = onnx_seg.predict(rgb, tta=tta), torch_seg.predict(rgb, tta=tta)
        assert a.shape == b.shape == (80, 120)
        assert len(np.unique(a)) > 1
        assert (a == b).mean() > 0.99
        probs = onnx_seg.predict_proba([rgb, rgb], tta=tta)
        assert np.array_equal(probs[0].argmax(0), a)


def test_bad_tta_settings_are_named() -> None:
    with pytest.raises(ValueError, match="at least one scale"):
        TTA(scales=())
    with pytest.raises(ValueError, match=r"scale 0 must be in \(0, 8\]"):
        TTA(scales=(0, 1.0))
    with pytest.raises(ValueError, match="must be numbers"):
        TTA(scales=("1.0",))  # type: ignore[arg-type]
    assert TTA.standard().to_dict() == {"scales": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], "flip": True}


def test_tta_argument_must_be_a_tta(onnx_seg: Segmenter) -> None:
    with pytest.raises(TypeError, match=r"tta must be a zoo\.tta\.TTA"):
        onnx_seg.predict(smooth_image(32, 32), tta=True)  # type: ignore[arg-type]


class _HalfResNet(torch.nn.Module):
    """A tiny net whose logits come out at half resolution (evaluation upsamples them)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, NUM_CLASSES, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.conv(x)}


def test_checkpoint_tta_equals_an_independent_computation() -> None:
    from torchvision.transforms.v2 import functional as TF

    from training.evaluate import predict_logits

    model = _HalfResNet().eval()
    images = torch.randn(2, 3, 30, 44)
    with torch.no_grad():
        plain = F.interpolate(model(images)["out"], (30, 44), mode="bilinear")
        assert torch.equal(predict_logits(model, images, scales=(1.0,)), plain)
        outputs = []
        for scale in (0.5, 1.5):
            size = [int(30 * scale + 0.5), int(44 * scale + 0.5)]
            view = TF.resize(images, size, antialias=True)
            for flip in (False, True):
                logits = model(TF.horizontal_flip(view) if flip else view)["out"]
                logits = TF.resize(logits, size, antialias=False)  # at the size it ran at
                logits = TF.horizontal_flip(logits) if flip else logits
                outputs.append(TF.resize(logits, [30, 44], antialias=False))
        expected = torch.stack(outputs).mean(0)
        got = predict_logits(model, images, scales=(0.5, 1.5), flip=True)
    assert got.shape == (2, NUM_CLASSES, 30, 44)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert (got - plain).abs().max() > 1e-2
    with pytest.raises(ValueError, match="must be in"):
        predict_logits(model, images, scales=(-1.0,))
