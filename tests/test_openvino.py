"""The OpenVINO backend on the built-in model, against ONNX Runtime fp32."""

from __future__ import annotations

import numpy as np
import pytest

from zoo import preprocess
from zoo.backend_onnx import OnnxBackend
from zoo.backend_openvino import OpenVinoBackend, openvino_capabilities
from zoo.errors import ModelFileError
from zoo.loading import PACKAGED_MODELS_DIR

pytest.importorskip("openvino")
MODEL = PACKAGED_MODELS_DIR / "lraspp_mbv3_synthcity_cpg" / "model.onnx"
EXAMPLES = PACKAGED_MODELS_DIR.parent / "examples"


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    images = [preprocess.read_image(p) for p in sorted(EXAMPLES.glob("*.png"))]
    return preprocess.normalize(images, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.fixture(scope="module")
def reference(frames: np.ndarray) -> np.ndarray:
    return OnnxBackend(MODEL, "cpu").run(frames)


def test_fp32_matches_onnx_runtime(frames: np.ndarray, reference: np.ndarray) -> None:
    backend = OpenVinoBackend(MODEL, precision="fp32", num_threads=2)
    logits = backend.run(frames)
    assert backend.providers == ["OpenVINO:CPU:f32"]
    np.testing.assert_allclose(logits, reference, atol=2e-3)
    assert np.array_equal(backend.run(frames[:1]), logits[:1])  # batch size changes are fine


def test_bf16_agrees_or_is_refused(frames: np.ndarray, reference: np.ndarray) -> None:
    if "BF16" not in openvino_capabilities():
        with pytest.raises(RuntimeError, match="bf16 support"):
            OpenVinoBackend(MODEL, precision="bf16")
        return
    labels = OpenVinoBackend(MODEL, precision="bf16").run(frames).argmax(1)
    assert (labels == reference.argmax(1)).mean() > 0.99


def test_bad_file_and_options(tmp_path) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(MODEL.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="could not be loaded by OpenVINO"):
        OpenVinoBackend(broken)
    with pytest.raises(ValueError, match="runs on the CPU"):
        OpenVinoBackend(MODEL, device="cuda")
    with pytest.raises(ValueError, match="supports precision"):
        OpenVinoBackend(MODEL, precision="fp16")
