"""Pre- and post-processing inside the ONNX graph, composed in memory at load time.

`pixel_graph(model, mean, std, output)` wraps a model directory's ONNX model (float NCHW
normalised input, `logits` output) so that it takes the image as it is decoded: uint8 RGB,
NHWC (`pixels`), and does the normalisation of `zoo.preprocess.normalize` in the same
float32 operations and order (`x / 255`, `- mean`, `/ std`), so that ONNX Runtime computes
bit-identical logits. Its single output is one of:

- "logits": float32 (N, C, H, W);
- "ids": the argmax over classes, uint8 (N, H, W) (int32 for models with more than 255
  classes), what `Segmenter.predict` returns when no resize is needed;
- "probs": the softmax over classes, float32 (N, C, H, W), for `predict_proba`.

Works for every existing model directory, without re-export (needs `onnx`, torch-free).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

PIXELS_NAME: Final = "pixels"
OUTPUTS: Final = ("logits", "ids", "probs")
MIN_OPSET: Final = 13  # Softmax/ArgMax over one axis of an N-D tensor
_PREFIX = "zoo_pixels_"


def ids_dtype(num_classes: int) -> np.dtype:
    """dtype of the "ids" output: uint8 up to 255 classes (255 stays free for "ignore")."""
    return np.dtype(np.uint8 if num_classes <= 255 else np.int32)


def supported(path: str | Path) -> bool:
    """Whether `pixel_graph` can wrap the ONNX file at `path` (onnx installed, opset >= 13,
    one image input); reads the graph without its external weights."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not installed, or a file ONNX Runtime / OpenVINO will report on
        return False
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    return opset >= MIN_OPSET and len(inputs) == 1


def pixel_graph(
    model_bytes: bytes,
    mean: Sequence[float],
    std: Sequence[float],
    output: str,
    num_classes: int,
) -> bytes:
    """The serialized model `model_bytes` wrapped with uint8 NHWC input and `output`.

    Raises ValueError when the model is not one image input -> `logits` (or first) output,
    or its opset is older than 13."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; use one of {', '.join(OUTPUTS)}")
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} < {MIN_OPSET}: no in-graph pre/post-processing")
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(f"expected one image input, got {[i.name for i in inputs]}")
    image = inputs[0]
    input_type = image.type.tensor_type.elem_type
    names = [o.name for o in graph.output]
    logits = "logits" if "logits" in names else names[0]
    logits_type = next(o for o in graph.output if o.name == logits).type.tensor_type.elem_type

    def name(suffix: str) -> str:
        return _PREFIX + suffix

    constants = {
        "255": np.asarray(255.0, np.float32),
        "mean": np.asarray(mean, np.float32).reshape(1, 3, 1, 1),
        "std": np.asarray(std, np.float32).reshape(1, 3, 1, 1),
    }
    graph.initializer.extend(numpy_helper.from_array(v, name(k)) for k, v in constants.items())
    normalised = image.name if input_type == TensorProto.FLOAT else name("normalised")
    pre = [  # transposed while still uint8 (a quarter of the bytes to move)
        helper.make_node("Transpose", [PIXELS_NAME], [name("nchw")], perm=[0, 3, 1, 2]),
        helper.make_node("Cast", [name("nchw")], [name("f32")], to=TensorProto.FLOAT),
        helper.make_node("Div", [name("f32"), name("255")], [name("unit")]),
        helper.make_node("Sub", [name("unit"), name("mean")], [name("centred")]),
        helper.make_node("Div", [name("centred"), name("std")], [normalised]),
    ]
    if input_type != TensorProto.FLOAT:  # e.g. a float16 model
        pre.append(helper.make_node("Cast", [normalised], [image.name], to=input_type))

    post = []
    source = logits
    if output in ("logits", "probs") and logits_type != TensorProto.FLOAT:
        post.append(helper.make_node("Cast", [logits], [name("logits32")], to=TensorProto.FLOAT))
        source = name("logits32")
    if output == "logits":
        result, result_type = source, TensorProto.FLOAT
    elif output == "probs":
        post.append(helper.make_node("Softmax", [source], [name("probs")], axis=1))
        result, result_type = name("probs"), TensorProto.FLOAT
    else:
        result_type = TensorProto.UINT8 if num_classes <= 255 else TensorProto.INT32
        post.append(helper.make_node("ArgMax", [logits], [name("argmax")], axis=1, keepdims=0))
        post.append(helper.make_node("Cast", [name("argmax")], [name("ids")], to=result_type))
        result = name("ids")

    nodes = pre + list(graph.node) + post
    del graph.node[:]
    graph.node.extend(nodes)
    graph.input.remove(image)
    graph.input.insert(
        0, helper.make_tensor_value_info(PIXELS_NAME, TensorProto.UINT8, ["N", "H", "W", 3])
    )
    del graph.output[:]
    dims: list[str | int] = ["N", num_classes, "H", "W"] if output != "ids" else ["N", "H", "W"]
    graph.output.append(helper.make_tensor_value_info(result, result_type, dims))
    return model.SerializeToString()


@dataclass(frozen=True)
class PixelSpec:
    """What the in-graph pre/post-processing needs from config.json."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int


class PixelGraphs:
    """`run_pixels` of a backend: one graph per output kind ("logits", "ids", "probs"), built
    on first use (thread-safe) by `compile(serialized_onnx) -> run(pixels) -> array`."""

    def __init__(
        self,
        path: Path,
        spec: PixelSpec,
        compile: Callable[[bytes], Callable[[np.ndarray], np.ndarray]],
    ) -> None:
        self.path = path
        self.spec = spec
        self._compile = compile
        self._runners: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
        self._lock = threading.Lock()

    def run(self, pixels: np.ndarray, output: str) -> np.ndarray:
        """uint8 (N, H, W, 3) RGB -> `output` of `zoo.ingraph` ("logits", "ids", "probs")."""
        runner = self._runners.get(output)
        if runner is None:
            with self._lock:
                if output not in self._runners:
                    graph = pixel_graph(
                        self.path.read_bytes(),
                        self.spec.mean,
                        self.spec.std,
                        output,
                        self.spec.num_classes,
                    )
                    self._runners[output] = self._compile(graph)
                runner = self._runners[output]
        return runner(np.ascontiguousarray(pixels, dtype=np.uint8))
