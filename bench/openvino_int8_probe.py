"""Where OpenVINO's int8 loses accuracy on LRASPP's QDQ file (docs/benchmarks.md, issue 18).

    python bench/openvino_int8_probe.py --frames /tmp/synth512/leftImg8bit/val [--model DIR]

Quantises the model directory's `model.onnx` as `zoo export` does (`export.quantize`,
calibrated on the first 8 frames at 256x512), then runs the other frames at full size through
the QDQ file's own semantics (ONNX Runtime with graph optimisations off: every Quantize /
DequantizeLinear executed as written), ONNX Runtime's int8 kernels and OpenVINO int8, and
prints each one's argmax agreement with fp32 and with the QDQ semantics, and the mean absolute
logit difference from the QDQ semantics. Then the same for a variant whose LRASPP
`low_classifier` reads the float feature instead of its quantised copy.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov

from export.quantize import quantize_int8
from zoo import preprocess
from zoo.config import ModelConfig

Runner = Callable[[np.ndarray], np.ndarray]


def ort_runner(path: Path, optimise: bool) -> Runner:
    options = ort.SessionOptions()
    if not optimise:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def openvino_runner(path: Path) -> Runner:
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda x: compiled(x)[0]


def float_low_classifier(source: Path, target: Path) -> None:
    """A copy of a QDQ file whose `low_classifier` Conv reads the float tensor that its
    Dequantize(Quantize(...)) input pair was made from."""
    model = onnx.load(str(source))
    producer = {output: node for node in model.graph.node for output in node.output}
    for node in model.graph.node:
        if node.name.endswith("low_classifier/Conv"):
            dequantize = producer[node.input[0]]
            node.input[0] = producer[dequantize.input[0]].input[0]
    onnx.save(model, str(target))


def compare(
    outputs: list[np.ndarray], expected: list[np.ndarray], references: list[np.ndarray]
) -> tuple[float, float, float]:
    """(agreement with fp32, agreement with the QDQ semantics, mean abs logit difference)."""
    pairs = list(zip(outputs, expected, references, strict=True))
    return (
        float(np.mean([(out.argmax(1) == ref).mean() for out, _, ref in pairs])),
        float(np.mean([(out.argmax(1) == exp.argmax(1)).mean() for out, exp, _ in pairs])),
        float(np.mean([np.abs(out - exp).mean() for out, exp, _ in pairs])),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", required=True, help="a folder of PNG frames (rglob)")
    parser.add_argument("--model", default="zoo/assets/models/lraspp_mbv3_synthcity_cpg")
    parser.add_argument("--calibration", type=int, default=8)
    args = parser.parse_args()
    model_dir = Path(args.model)
    config = ModelConfig.load(model_dir)
    rgbs = [preprocess.decode(str(path)).rgb for path in sorted(Path(args.frames).rglob("*.png"))]
    mean, std = config.mean, config.std
    calibration = [
        preprocess.normalize([preprocess.resize_rgb(rgb, (256, 512))], mean, std)
        for rgb in rgbs[: args.calibration]
    ]
    frames = [preprocess.normalize([rgb], mean, std) for rgb in rgbs[args.calibration :]]
    fp32 = ort_runner(model_dir / "model.onnx", optimise=True)
    references = [fp32(x).argmax(1) for x in frames]
    with tempfile.TemporaryDirectory() as work:
        quantised, rewired = Path(work) / "int8.onnx", Path(work) / "int8_float_low.onnx"
        quantize_int8(model_dir / "model.onnx", quantised, calibration)
        float_low_classifier(quantised, rewired)
        print(f"{len(frames)} frames, int8 calibrated on {len(calibration)}")
        print(
            "| file | path | agreement with fp32 | with the QDQ semantics | mean abs logit diff |"
        )
        print("|---|---|---|---|---|")
        for label, path in (("int8 (as exported)", quantised), ("low_classifier float", rewired)):
            semantics = ort_runner(path, optimise=False)
            expected = [semantics(x) for x in frames]
            runners = {
                "ONNX Runtime int8": ort_runner(path, True),
                "OpenVINO int8": openvino_runner(path),
            }
            for name, run in runners.items():
                vs_fp32, vs_qdq, diff = compare([run(x) for x in frames], expected, references)
                print(f"| {label} | {name} | {vs_fp32:.2%} | {vs_qdq:.2%} | {diff:.3f} |")


if __name__ == "__main__":
    main()
