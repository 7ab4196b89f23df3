"""export.qdq_rewrite: hard-swish rewrite and scale folding around int8 quantisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.onnx_export import INPUT_NAME
from export.qdq_rewrite import (
    SCALE_SUFFIX,
    decompose_hardswish,
    float_output_tail,
    fold_hardswish_scales,
    shapes_before_dequantize,
)
from export.quantize import quantize_int8


def conv_hardswish_model(channels: int = 4, hardswish_last: bool = False) -> onnx.ModelProto:
    """input -> Conv -> HardSwish [-> Conv] -> output, random weights."""
    rng = np.random.default_rng(0)

    def weight(name: str) -> onnx.TensorProto:
        return numpy_helper.from_array(
            rng.normal(0, 1, (channels, channels, 3, 3)).astype(np.float32), name
        )

    nodes = [
        helper.make_node("Conv", [INPUT_NAME, "w1"], ["c1"], "conv1", pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["c1"], ["hs" if not hardswish_last else "out"], "hs1"),
    ]
    if not hardswish_last:
        nodes.append(helper.make_node("Conv", ["hs", "w2"], ["out"], "conv2", pads=[1, 1, 1, 1]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, channels, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, channels, 8, 8])],
        [weight("w1"), weight("w2")] if not hardswish_last else [weight("w1")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: x})[0]


def test_decomposed_hardswish_computes_hardswish() -> None:
    graph = helper.make_graph(
        [helper.make_node("HardSwish", [INPUT_NAME], ["out"], "hs")],
        "g",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1001])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1001])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    x = np.linspace(-6, 6, 1001, dtype=np.float32)  # both bends of hard-swish, at -3 and 3
    before = run(model, x)
    assert decompose_hardswish(model) == 1
    assert not [n for n in model.graph.node if n.op_type == "HardSwish"]
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_allclose(run(model, x), before, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(before, x * np.clip(x + 3, 0, 6) / 6, rtol=1e-6, atol=1e-6)


def test_decompose_without_hardswish_changes_nothing() -> None:
    model = conv_hardswish_model()
    model.graph.node[1].op_type = "Relu"
    before = model.SerializeToString()
    assert decompose_hardswish(model) == 0
    assert model.SerializeToString() == before


def calibration(n: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    return [rng.normal(0, 1, (1, 4, 8, 8)).astype(np.float32) for _ in range(n)]


def test_int8_folds_the_hardswish_scale_and_keeps_outputs_float(tmp_path: Path) -> None:
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(conv_hardswish_model(), str(fp32))
    report = quantize_int8(fp32, tmp_path / "int8.onnx", calibration())
    assert (report.hardswish_rewritten, report.hardswish_scales_folded) == (1, 1)
    assert report.float_tail == ["conv2"]
    model = onnx.load(str(report.path))
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert "HardSwish" not in ops and "HardSigmoid" not in ops
    assert not [n for n in model.graph.node if n.name.endswith(SCALE_SUFFIX)]
    producer = {o: n for n in model.graph.node for o in n.output}
    assert producer["out"].op_type == "Conv"  # not a DequantizeLinear: no 8-bit output
    used = {name for node in model.graph.node for name in node.input}
    assert all(tensor.name in used for tensor in model.graph.initializer)
    # int8 tracks fp32 (quantisation error only): the folded scale is the right one
    x = calibration(1)[0]
    reference, quantized = run(onnx.load(str(fp32)), x), run(model, x)
    assert np.abs(quantized - reference).max() < 0.05 * np.abs(reference).max()


def test_unfoldable_scale_is_left_in_place(tmp_path: Path) -> None:
    # hard-swish writes the graph output: its scale node stays float and is not folded
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(conv_hardswish_model(hardswish_last=True), str(fp32))
    report = quantize_int8(fp32, tmp_path / "int8.onnx", calibration())
    assert report.hardswish_rewritten == 1 and report.hardswish_scales_folded == 0
    assert report.float_tail == ["hs1" + SCALE_SUFFIX]
    model = onnx.load(str(report.path))
    x = calibration(1)[0]
    reference = run(onnx.load(str(fp32)), x)
    assert np.abs(run(model, x) - reference).max() < 0.05 * np.abs(reference).max()
    assert fold_hardswish_scales(model) == 0


def conv_upsample_crop_model() -> onnx.ModelProto:
    """input -> Conv -> Resize x2 -> Slice (crop) -> out: a segmentation network's tail."""
    rng = np.random.default_rng(3)
    weight = rng.normal(0, 1, (4, 4, 3, 3)).astype(np.float32)
    constants = {
        "w": weight,
        "scales": np.array([1, 1, 2, 2], np.float32),
        "starts": np.array([0, 0], np.int64),
        "ends": np.array([15, 15], np.int64),
        "axes": np.array([2, 3], np.int64),
    }
    graph = helper.make_graph(
        [
            helper.make_node("Conv", [INPUT_NAME, "w"], ["c"], "", pads=[1, 1, 1, 1]),
            helper.make_node("Resize", ["c", "", "scales"], ["r"], "", mode="linear"),
            helper.make_node("Slice", ["r", "starts", "ends", "axes"], ["out"], "crop"),
        ],
        "g",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 15, 15])],
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def test_float_output_tail_walks_back_over_resample_and_crop() -> None:
    model = conv_upsample_crop_model()
    assert float_output_tail(model) == ["crop", "Resize_1"]  # unnamed nodes get names
    assert model.graph.node[0].name == "Conv_0"


def test_int8_tail_runs_in_float(tmp_path: Path) -> None:
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(conv_upsample_crop_model(), str(fp32))
    report = quantize_int8(fp32, tmp_path / "int8.onnx", calibration())
    assert report.float_tail == ["crop", "Resize_1"]
    model = onnx.load(str(report.path))
    producer = {o: n for n in model.graph.node for o in n.output}
    resize = producer[producer["out"].input[0]]
    assert (producer["out"].op_type, resize.op_type) == ("Slice", "Resize")
    assert producer[resize.input[0]].op_type == "DequantizeLinear"  # the conv is int8
    x = calibration(1)[0]
    reference = run(onnx.load(str(fp32)), x)
    assert np.abs(run(model, x) - reference).max() < 0.05 * np.abs(reference).max()


def conv_upsample_to_input_size_model() -> onnx.ModelProto:
    """input (any H x W) -> stride-2 Conv -> Resize to Shape(input)'s H x W -> out."""
    rng = np.random.default_rng(5)
    constants = {
        "w": rng.normal(0, 1, (4, 4, 3, 3)).astype(np.float32),
        "hw_start": np.array([2], np.int64),
        "hw_end": np.array([4], np.int64),
        "nc": np.array([1, 4], np.int64),
    }
    graph = helper.make_graph(
        [
            helper.make_node("Shape", [INPUT_NAME], ["shape"], "shape"),
            helper.make_node("Slice", ["shape", "hw_start", "hw_end"], ["hw"], "hw"),
            helper.make_node("Concat", ["nc", "hw"], ["sizes"], "sizes", axis=0),
            helper.make_node(
                "Conv", [INPUT_NAME, "w"], ["c"], "conv", pads=[1] * 4, strides=[2, 2]
            ),
            helper.make_node("Resize", ["c", "", "", "sizes"], ["out"], "up", mode="linear"),
        ],
        "g",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 4, "h", "w"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, "h", "w"])],
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def test_int8_reads_the_input_shape_without_dequantising_the_input(tmp_path: Path) -> None:
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(conv_upsample_to_input_size_model(), str(fp32))
    rng = np.random.default_rng(1)
    images = [rng.normal(0, 1, (1, 4, 11, 13)).astype(np.float32) for _ in range(8)]  # odd size
    report = quantize_int8(fp32, tmp_path / "int8.onnx", images)
    assert report.shapes_read_before_dequantize == 1
    model = onnx.load(str(report.path))
    onnx.checker.check_model(model, full_check=True)
    producer = {o: n for n in model.graph.node for o in n.output}
    (shape,) = [n for n in model.graph.node if n.op_type == "Shape"]
    assert producer[shape.input[0]].op_type == "QuantizeLinear"
    # the input's one dequantisation left is the conv's (none written for the Shape alone)
    readers = {n.name: n.op_type for n in model.graph.node if n.input[0] == shape.input[0]}
    assert sorted(readers.values()) == ["DequantizeLinear", "Shape"]
    x = images[0]
    reference = run(onnx.load(str(fp32)), x)
    quantized = run(model, x)
    assert quantized.shape == reference.shape == (1, 4, 11, 13)
    assert np.abs(quantized - reference).max() < 0.05 * np.abs(reference).max()


def test_shape_of_float_tensors_is_left_alone() -> None:
    model = conv_upsample_to_input_size_model()
    before = model.SerializeToString()
    assert shapes_before_dequantize(model) == 0
    assert model.SerializeToString() == before


@pytest.mark.parametrize("count", [0, 1])
def test_quantize_needs_images(tmp_path: Path, count: int) -> None:
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(conv_hardswish_model(), str(fp32))
    if count == 0:
        with pytest.raises(ValueError, match="at least one calibration image"):
            quantize_int8(fp32, tmp_path / "int8.onnx", [])
    else:
        assert quantize_int8(fp32, tmp_path / "int8.onnx", calibration(count)).path.is_file()
