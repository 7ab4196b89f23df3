"""Joint transforms keep image and mask aligned; padding is ignored in the mask."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as nnf
from torchvision import tv_tensors

from training.transforms import eval_transforms, train_transforms

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
STEP = 12  # image value = STEP * (label + 1): no pixel is black, so black means padding


def _encoded_sample(height: int, width: int, seed: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """Blocky labels 0..18 and an image whose pixels encode them."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 19, (height // 16 + 1, width // 16 + 1), generator=g)
    label = blocks.repeat_interleave(16, 0).repeat_interleave(16, 1)[:height, :width]
    image = (STEP * (label + 1)).to(torch.uint8).expand(3, -1, -1).clone()
    return tv_tensors.Image(image), tv_tensors.Mask(label)


def _decode(image: torch.Tensor) -> torch.Tensor:
    """Un-normalise to 0..255 (first channel)."""
    return (image[0] * STD[0] + MEAN[0]) * 255


def _interior(mask: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Pixels whose (2r+1)^2 neighbourhood holds one mask value, not near the border."""
    m = mask[None, None].float()
    k = 2 * radius + 1
    same = nnf.max_pool2d(m, k, 1) == -nnf.max_pool2d(-m, k, 1)
    return nnf.pad(same, (radius,) * 4)[0, 0]


@pytest.mark.parametrize("size", [(48, 64), (100, 150)])
def test_train_transforms_keep_image_and_mask_aligned(size: tuple[int, int]) -> None:
    crop = (64, 80)
    transform = train_transforms(crop, MEAN, STD, photometric=False)
    image, mask = _encoded_sample(*size, seed=size[0])
    padded_seen, checked = False, 0
    for seed in range(25):
        torch.manual_seed(seed)
        out_image, out_mask = transform(image, mask)
        assert out_image.dtype == torch.float32 and out_image.shape == (3, *crop)
        assert out_mask.dtype == torch.int64 and out_mask.shape == crop
        value = _decode(out_image)
        padding = value.abs() < 0.5
        # Padding is exactly where the mask is ignore (the input has no ignore pixels).
        assert torch.equal(padding, out_mask == 255)
        padded_seen |= bool(padding.any())
        inside = _interior(out_mask) & ~padding
        checked += int(inside.sum())
        expected = STEP * (out_mask[inside] + 1).float()
        assert torch.allclose(value[inside], expected, atol=1.0), f"misaligned at seed {seed}"
    assert checked > 1000
    if size == (48, 64):
        assert padded_seen


def test_train_transforms_photometric_changes_image_not_mask() -> None:
    """Same seed with and without colour jitter: the same geometry (equal masks), other
    pixel values."""
    image, mask = _encoded_sample(64, 64, seed=1)
    outputs = {}
    for photometric in (True, False):
        transform = train_transforms(
            (64, 64), MEAN, STD, scale_range=(1.0, 1.0), photometric=photometric
        )
        torch.manual_seed(0)
        outputs[photometric] = transform(image, mask)
    (jittered, mask_a), (plain, mask_b) = outputs[True], outputs[False]
    assert torch.equal(mask_a, mask_b)
    assert jittered.dtype == torch.float32 and jittered.shape == (3, 64, 64)
    assert (jittered - plain).abs().mean() > 0.01, "colour jitter left the image unchanged"


def test_eval_transforms_only_normalise() -> None:
    image, mask = _encoded_sample(37, 53, seed=2)
    out_image, out_mask = eval_transforms(MEAN, STD)(image, mask)
    assert out_image.shape == (3, 37, 53) and out_image.dtype == torch.float32
    assert torch.equal(out_mask, mask) and out_mask.dtype == torch.int64
    assert torch.allclose(_decode(out_image), image[0].float(), atol=1e-3)
