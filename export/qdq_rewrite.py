"""ONNX graph rewrites around onnxruntime's static int8 (QDQ) quantisation.

onnxruntime has no quantised hard-swish: quantising MobileNetV3 as exported leaves every
`HardSwish` as dequantise -> float HardSigmoid -> quantise -> QLinearMul, which cost LRASPP as
much time as all its int8 convolutions. Written as `x * clip(x + 3, 0, 6) * (1/6)` instead, the
quantiser turns it into uint8 kernels (QLinearAdd with the clip folded into its output range,
QLinearMul), and the constant `* (1/6)` folds exactly into the next dequantisation scale.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

SCALE_SUFFIX = "/hardswish_scale"  # names the `* (1/6)` node that `fold_hardswish_scales` removes
_CONSTANTS = {"hardswish_three": 3.0, "hardswish_zero": 0.0, "hardswish_six": 6.0}
_SIXTH = "hardswish_sixth"


def decompose_hardswish(model: onnx.ModelProto) -> int:
    """Replace each `HardSwish(x)` by `x * clip(x + 3, 0, 6) * (1/6)` in place; return count."""
    graph = model.graph
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in graph.node:
        if node.op_type != "HardSwish" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        count += 1
        x, y = node.input[0], node.output[0]
        prefix = (node.name or f"hardswish_{count}").rstrip("/")
        nodes += [
            helper.make_node("Add", [x, "hardswish_three"], [f"{prefix}/plus3"], f"{prefix}/add"),
            helper.make_node(
                "Clip",
                [f"{prefix}/plus3", "hardswish_zero", "hardswish_six"],
                [f"{prefix}/relu6"],
                f"{prefix}/clip",
            ),
            helper.make_node("Mul", [x, f"{prefix}/relu6"], [f"{prefix}/x_relu6"], f"{prefix}/mul"),
            helper.make_node("Mul", [f"{prefix}/x_relu6", _SIXTH], [y], prefix + SCALE_SUFFIX),
        ]
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
        values = {**_CONSTANTS, _SIXTH: 1.0 / 6.0}
        graph.initializer.extend(
            numpy_helper.from_array(np.array(value, np.float32), name)
            for name, value in values.items()
        )
    return count


def fold_hardswish_scales(model: onnx.ModelProto) -> int:
    """In a QDQ model, drop each `* (1/6)` of `decompose_hardswish` with its output Q/DQ pair:
    consumers dequantise the product `x * relu6` with its own scale / 6 (exact: one rounding
    fewer). Nodes not in the expected Q/DQ pattern are left alone. Returns the count folded."""
    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    graph_outputs = {output.name for output in graph.output}
    removed: set[int] = set()
    replaced: dict[int, onnx.NodeProto] = {}
    folded = 0
    for node in graph.node:
        if node.op_type != "Mul" or not node.name.endswith(SCALE_SUFFIX):
            continue
        dequantize = producer.get(node.input[0])
        quantize = consumers.get(node.output[0], [])
        if (
            dequantize is None
            or dequantize.op_type != "DequantizeLinear"
            or dequantize.input[1] not in initializers
            or len(quantize) != 1
            or quantize[0].op_type != "QuantizeLinear"
            or node.output[0] in graph_outputs
            or quantize[0].output[0] in graph_outputs
        ):
            continue
        requantized = consumers.get(quantize[0].output[0], [])
        if not requantized or any(n.op_type != "DequantizeLinear" for n in requantized):
            continue
        scale_name = f"{dequantize.input[1]}/6"
        if scale_name not in initializers:
            scale = numpy_helper.to_array(initializers[dequantize.input[1]])
            initializers[scale_name] = numpy_helper.from_array(
                (scale / 6).astype(scale.dtype), scale_name
            )
            graph.initializer.append(initializers[scale_name])
        inputs = [dequantize.input[0], scale_name, *dequantize.input[2:]]
        for old in requantized:
            replaced[id(old)] = helper.make_node(
                "DequantizeLinear", inputs, list(old.output), f"{old.name}/folded"
            )
        removed |= {id(node), id(quantize[0])}
        folded += 1
    if folded:
        kept = [replaced.get(id(n), n) for n in graph.node if id(n) not in removed]
        del graph.node[:]
        graph.node.extend(kept)
        drop_dead_code(model)
    return folded


def drop_dead_code(model: onnx.ModelProto) -> None:
    """Remove nodes whose outputs nothing reads, then initializers nothing reads
    (onnxruntime warns about each unused initializer at every session start)."""
    graph = model.graph
    outputs = {output.name for output in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        live = [node for node in graph.node if used & set(node.output)]
        if len(live) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(live)
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


# ops that only move, resample or normalise values: at the end of a graph (upsampling the
# logits to the input size, cropping padding, softmax / argmax heads) they stay float
FLOAT_TAIL_OPS = frozenset(
    {"Resize", "Slice", "Pad", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity"}
    | {"Flatten", "Softmax", "ArgMax"}
)


def float_output_tail(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that write graph outputs, and of the resample / crop / reshape ops
    before them (unnamed ones are named first): quantising them would only round full-size
    outputs to 8 bits and cost a quantise + dequantise pass over them."""
    graph = model.graph
    for index, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
    producer = {output: node for node in graph.node for output in node.output}
    pending = [producer[o.name] for o in graph.output if o.name in producer]
    tail: dict[str, None] = {}
    while pending:
        node = pending.pop()
        if node.name in tail:
            continue
        tail[node.name] = None
        source = producer.get(node.input[0]) if node.input else None
        if source is not None and source.op_type in FLOAT_TAIL_OPS:
            pending.append(source)
    return list(tail)


def shapes_before_dequantize(model: onnx.ModelProto) -> int:
    """Point each `Shape` that reads a DequantizeLinear output at the quantised tensor instead
    (same shape): otherwise a graph whose output size is read off the input dequantises the
    whole input just for its shape. Dead dequantisations are dropped; returns the count."""
    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    moved = 0
    for node in graph.node:
        source = producer.get(node.input[0]) if node.op_type == "Shape" else None
        if source is not None and source.op_type == "DequantizeLinear":
            node.input[0] = source.input[0]
            moved += 1
    if moved:
        drop_dead_code(model)
    return moved
