"""The torch backend runs reduced precision when asked (bf16 on any device, fp16 on CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.availability import PACKAGED_MODELS_DIR
from zoo.preprocess import read_image

MODEL = PACKAGED_MODELS_DIR / "lraspp_mbv3_synthcity_cpg"
FRAME = PACKAGED_MODELS_DIR.parent / "examples" / "synthcity_1.png"


def test_bf16_agrees_with_fp32() -> None:
    image = read_image(FRAME)
    fp32 = zoo.load(MODEL, backend="torch", precision="fp32", device="cpu")
    bf16 = zoo.load(MODEL, backend="torch", precision="bf16", device="cpu")
    assert bf16.backend.dtype == torch.bfloat16 and fp32.backend.dtype == torch.float32
    assert "bf16" in repr(bf16)
    agreement = (bf16.predict(image) == fp32.predict(image)).mean()
    assert agreement > 0.97  # bf16 rounds: close to fp32 (the dtype check shows it ran)


def test_fp16_needs_cuda(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("has CUDA")
    with pytest.raises(ValueError, match=r"fp16.*needs a CUDA device"):
        zoo.load(MODEL, backend="torch", precision="fp16", device="cpu")
    # Not asking for torch: auto found no model.fp16.onnx; the error says what to do instead.
    with pytest.raises(ValueError, match=r"no model.fp16.onnx .*zoo export --fp16.*'bf16'"):
        zoo.load(MODEL, precision="fp16", device="cpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_on_cuda(precision: str) -> None:
    image = read_image(FRAME)
    reference = zoo.load(MODEL, backend="torch", precision="fp32", device="cpu").predict(image)
    fast = zoo.load(MODEL, backend="torch", precision=precision, device="cuda")
    assert fast.device == "cuda"
    assert (fast.predict(image) == reference).mean() > 0.97
    assert np.asarray(fast.predict(image)).shape == image.shape[:2]
