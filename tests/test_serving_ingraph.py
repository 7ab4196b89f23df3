"""In-graph pre/post-processing (`zoo.ingraph`): uint8 pixels in, ids / probabilities out.

The reference is the numpy path (`preprocess.normalize`, `backend.run`, numpy argmax /
softmax / resize), which the Segmenter takes when a backend has no pixel graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import zoo
from zoo import ingraph, preprocess
from zoo.loading import PACKAGED_MODELS_DIR

BUILTIN = PACKAGED_MODELS_DIR / "lraspp_mbv3_synthcity_cpg"
EXAMPLES = sorted((PACKAGED_MODELS_DIR.parent / "examples").glob("*.png"))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def conv_model(weights: np.ndarray, bias: np.ndarray, opset: int = 18, fp16: bool = False) -> bytes:
    """A 1x1 convolution: logits[c] = sum_k weights[c, k] * input[k] + bias[c]."""
    dtype = np.float16 if fp16 else np.float32
    elem = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    classes = weights.shape[0]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["logits"])],
        "conv",
        [helper.make_tensor_value_info("input", elem, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", elem, ["N", classes, "H", "W"])],
        [
            numpy_helper.from_array(weights.reshape(classes, 3, 1, 1).astype(dtype), "w"),
            numpy_helper.from_array(bias.astype(dtype), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def run(graph: bytes, pixels: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return session.run(None, {"pixels": pixels})[0]


def test_pixel_graph_of_a_known_model() -> None:
    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(300, 3)), rng.normal(size=300)
    pixels = rng.integers(0, 256, size=(2, 5, 7, 3), dtype=np.uint8)
    # expected by hand: normalise, then the 1x1 convolution as a matrix product
    x = (pixels / 255.0 - np.asarray(MEAN)) / np.asarray(STD)
    logits = np.einsum("nhwk,ck->nchw", x, weights) + bias[None, :, None, None]
    graph = conv_model(weights, bias)

    ids = run(ingraph.pixel_graph(graph, MEAN, STD, "ids", 300), pixels)
    assert ids.dtype == np.int32 and ids.shape == (2, 5, 7)  # 300 classes: no uint8
    np.testing.assert_array_equal(ids, logits.argmax(1))
    out = run(ingraph.pixel_graph(graph, MEAN, STD, "logits", 300), pixels)
    np.testing.assert_allclose(out, logits, atol=1e-4)
    probs = run(ingraph.pixel_graph(graph, MEAN, STD, "probs", 300), pixels)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), atol=1e-6)


def test_pixel_graph_of_a_float16_model_gives_uint8_ids_and_float32_logits() -> None:
    rng = np.random.default_rng(1)
    weights, bias = rng.normal(size=(4, 3)), rng.normal(size=4)
    pixels = rng.integers(0, 256, size=(1, 6, 8, 3), dtype=np.uint8)
    graph = conv_model(weights, bias, fp16=True)
    ids = run(ingraph.pixel_graph(graph, MEAN, STD, "ids", 4), pixels)
    logits = run(ingraph.pixel_graph(graph, MEAN, STD, "logits", 4), pixels)
    assert ids.dtype == np.uint8 and logits.dtype == np.float32
    np.testing.assert_array_equal(ids, logits.argmax(1))


def test_old_opset_is_not_wrapped(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(conv_model(np.ones((2, 3)), np.zeros(2), opset=11))
    assert not ingraph.supported(path)
    with pytest.raises(ValueError, match="opset 11"):
        ingraph.pixel_graph(path.read_bytes(), MEAN, STD, "ids", 2)
    assert ingraph.supported(BUILTIN / "model.onnx")


@pytest.fixture(scope="module")
def pair() -> tuple[zoo.Segmenter, zoo.Segmenter]:
    """The built-in model on ONNX Runtime fp32 with and without pixel graphs."""
    fused = zoo.load(BUILTIN, backend="onnx", device="cpu")
    plain = zoo.load(BUILTIN, backend="onnx", device="cpu")
    plain.backend.pixels = None
    assert fused.backend.pixels is not None
    return fused, plain


def test_fused_predict_is_identical_to_the_numpy_path(pair, monkeypatch) -> None:
    fused, plain = pair
    expected = plain.predict(EXAMPLES)
    asked: list[str] = []
    pixel_run = fused.backend.pixels.run
    monkeypatch.setattr(
        fused.backend.pixels, "run", lambda x, o: asked.append(o) or pixel_run(x, o)
    )

    def no_float_work(*args, **kwargs):
        raise AssertionError("predict normalised in numpy")

    monkeypatch.setattr(preprocess, "normalize", no_float_work)
    monkeypatch.setattr(preprocess, "argmax_resized", no_float_work)
    masks = fused.predict(EXAMPLES)
    assert asked == ["ids"] * len(EXAMPLES)
    for mask, reference in zip(masks, expected, strict=True):
        assert mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, reference)


def test_fused_proba_matches_the_numpy_path(pair) -> None:
    fused, plain = pair
    np.testing.assert_allclose(
        fused.predict_proba(EXAMPLES[0]), plain.predict_proba(EXAMPLES[0]), atol=1e-6
    )


def test_resized_and_sliding_predictions_take_logits_and_match(pair, monkeypatch) -> None:
    fused, plain = pair
    image = preprocess.read_image(EXAMPLES[1])  # 256x512: downscaled to 192 px, slid at 128x256
    asked: list[str] = []
    pixel_run = fused.backend.pixels.run
    monkeypatch.setattr(
        fused.backend.pixels, "run", lambda x, o: asked.append(o) or pixel_run(x, o)
    )
    np.testing.assert_array_equal(
        fused.predict(image, max_side=192), plain.predict(image, max_side=192)
    )
    np.testing.assert_array_equal(
        fused.predict(image, mode="slide"), plain.predict(image, mode="slide")
    )
    assert set(asked) == {"logits"}
    # a batch mixing both: each image still gets its own path
    masks = fused.predict([image, image[:, :384]], max_side=384, batch_size=2)
    assert asked[-2:] == ["logits", "ids"]
    np.testing.assert_array_equal(masks[1], plain.predict(image[:, :384]))


def test_openvino_fused_and_fallback_paths_agree() -> None:
    pytest.importorskip("openvino")
    fused = zoo.load(BUILTIN, backend="openvino", precision="fp32", device="cpu")
    plain = zoo.load(BUILTIN, backend="openvino", precision="fp32", device="cpu")
    plain.backend.pixels = None
    reference = zoo.load(BUILTIN, backend="onnx", device="cpu").predict(EXAMPLES)
    for image, expected in zip(EXAMPLES, reference, strict=True):
        # OpenVINO folds the normalisation into the first convolution: a few flips at most
        assert (fused.predict(image) == plain.predict(image)).mean() > 0.999
        assert (fused.predict(image) == expected).mean() > 0.999


def test_graph_is_the_model_file_wrapped_not_changed() -> None:
    wrapped = onnx.load_from_string(
        ingraph.pixel_graph((BUILTIN / "model.onnx").read_bytes(), MEAN, STD, "ids", 19)
    )
    original = onnx.load(str(BUILTIN / "model.onnx"))
    assert [i.name for i in wrapped.graph.input] == ["pixels"]
    assert wrapped.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    assert len(wrapped.graph.node) == len(original.graph.node) + 7  # 5 before, 2 after
