"""Accuracy gates of reduced precision: how often each bf16 / int8 serving path of a model
directory agrees with fp32, measured on labelled frames and recorded in its eval.json.

    python -m export.precision_gates MODEL_DIR FRAMES [--limit 16] [--threads 2]

FRAMES: a folder of images with labels beside them (e.g. `zoo data synthcity /tmp/synth
--train 0 --val 16` -> /tmp/synth/leftImg8bit/val). Every path runs exactly as `zoo.load`
serves it (`Segmenter.predict` at full resolution, in-graph pre/post-processing) and is compared
with ONNX Runtime fp32 pixel by pixel; with labels, the mIoU of both is recorded too. The
result goes to eval.json under `zoo.selection.AGREEMENT_KEY` ("precision_agreement"), keyed
"backend/precision", which `zoo.load` checks against `zoo.selection.GATES`. Only eval.json is
rewritten (atomically): the model files and their sha256 record stay valid.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from export.images import CALIB_LIMIT, CalibrationSet, load_calibration_set
from export.parity import mean_iou
from zoo.backend_openvino import openvino_capabilities
from zoo.backends import BACKENDS
from zoo.cli_errors import int_in
from zoo.config import ModelConfig
from zoo.devices import cpu_name
from zoo.fileio import read_json_object, write_text_atomic
from zoo.modelfiles import EVAL_NAME
from zoo.selection import AGREEMENT_KEY, GATES


def reduced_paths(model_dir: Path) -> list[tuple[str, str]]:
    """(backend, precision) of every installed CPU path below fp32 that serves an exported
    ONNX file present in `model_dir` (bf16 only where OpenVINO reports BF16). Torch's bf16,
    an explicit opt-in on the training framework, gets no gate figure."""
    paths = []
    for name, row in BACKENDS.items():
        for precision, file_name in row.files.items():
            if precision not in ("bf16", "int8") or not row.installed():
                continue
            if not file_name.endswith(".onnx"):
                continue
            if not (model_dir / file_name).is_file():
                continue
            if precision == "bf16" and "BF16" not in openvino_capabilities():
                continue
            paths.append((name, precision))
    return paths


def load_ungated(
    model_dir: str | Path, backend: str, precision: str, num_threads: int | None = None
) -> Any:
    """The CPU `Segmenter` of one serving path as `zoo.load` builds it, at full resolution
    (no `max_side`) and with no accuracy gate: the path measured, not the path chosen."""
    import zoo

    return zoo.load(
        model_dir,
        backend=backend,
        precision=precision,
        device="cpu",
        max_side=None,
        num_threads=num_threads,
        min_agreement=0.0,
    )


def measure_agreement(
    model_dir: str | Path,
    frames: str | Path,
    limit: int = CALIB_LIMIT,
    num_threads: int | None = None,
    size: tuple[int, int] | None = None,
    label_folder: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """`agreement_on` up to `limit` frames of the folder `frames` resized to `size` (H, W;
    default: the first frame's size), labels where `load_calibration_set` finds them."""
    config = ModelConfig.load(Path(model_dir))
    calibration = load_calibration_set(
        frames, size, config.mean, config.std, limit=limit, label_folder=label_folder
    )
    return agreement_on(model_dir, calibration, num_threads)


def agreement_on(
    model_dir: str | Path, calibration: CalibrationSet, num_threads: int | None = None
) -> dict[str, dict[str, Any]]:
    """`{"backend/precision": {"argmax_agreement", "pixels", "frames", "size", "miou_fp32",
    "miou", "miou_drop", "gate", "passes"}}` for each `reduced_paths` entry, on the frames
    of `calibration` as read (`calibration.rgb`)."""
    model_dir = Path(model_dir)
    config = ModelConfig.load(model_dir)
    pixels = calibration.rgb
    if len(pixels) != len(calibration.images):
        raise ValueError("calibration set without its RGB frames (load_calibration_set reads them)")
    size = calibration.size

    def masks(backend: str, precision: str) -> list[np.ndarray]:
        segmenter = load_ungated(model_dir, backend, precision, num_threads)
        return list(segmenter.predict(pixels))

    reference = masks("onnx", "fp32")
    labels = calibration.labels
    miou_fp32 = (
        mean_iou(reference, labels, config.num_classes, config.ignore_index) if labels else None
    )
    results: dict[str, dict[str, Any]] = {}
    for backend, precision in reduced_paths(model_dir):
        predicted = masks(backend, precision)
        same = sum(int((p == r).sum()) for p, r in zip(predicted, reference, strict=True))
        counted = sum(r.size for r in reference)
        agreement = same / counted
        figures: dict[str, Any] = {
            "argmax_agreement": agreement,
            "pixels": counted,
            "frames": len(pixels),
            "size": list(size),
            "gate": GATES[precision],
            "passes": agreement >= GATES[precision],
        }
        if labels and miou_fp32 is not None:
            miou = mean_iou(predicted, labels, config.num_classes, config.ignore_index)
            figures.update(miou_fp32=miou_fp32, miou=miou, miou_drop=miou_fp32 - miou)
        results[f"{backend}/{precision}"] = figures
    return results


def agreement_record(
    figures: dict[str, dict[str, Any]], frames: str | Path, command: str
) -> dict[str, Any]:
    """The eval.json entry: `figures` and how, where and with what they were measured."""
    import onnxruntime

    versions = {"onnxruntime": onnxruntime.__version__}
    try:
        import openvino

        versions["openvino"] = openvino.__version__
    except ImportError:
        pass
    return {
        **figures,
        "reference": "onnx/fp32",
        "frames_dir": str(frames),
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_name(),
        "versions": versions,
    }


def record_agreement(
    model_dir: str | Path,
    figures: dict[str, dict[str, Any]],
    frames: str | Path,
    command: str,
    frames_source: str | None = None,
) -> Path:
    """Write `figures` into eval.json (atomically; the other keys kept)."""
    eval_path = Path(model_dir) / EVAL_NAME
    data = read_json_object(eval_path) if eval_path.is_file() else {}
    data[AGREEMENT_KEY] = agreement_record(figures, frames, command)
    if frames_source:
        data[AGREEMENT_KEY]["frames_source"] = frames_source
    write_text_atomic(eval_path, json.dumps(data, indent=2) + "\n")
    return eval_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("frames", type=Path, help="labelled frames (labels beside the images)")
    parser.add_argument("--limit", type=int_in(1), default=16, help="frames to measure on")
    parser.add_argument("--threads", type=int_in(1), default=None)
    parser.add_argument("--frames-source", help="how the frames were made (recorded)")
    args = parser.parse_args(argv)
    for path, what in ((args.model_dir, "model directory"), (args.frames, "frames folder")):
        if not path.is_dir():
            parser.error(f"{what} {path} is not a folder")
    try:
        figures = measure_agreement(args.model_dir, args.frames, args.limit, args.threads)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    command = "python -m export.precision_gates " + shlex.join(argv or sys.argv[1:])
    record_agreement(args.model_dir, figures, args.frames, command, args.frames_source)
    for key, values in figures.items():
        verdict = "passes" if values["passes"] else "below"
        print(f"{key}: {values['argmax_agreement']:.4%} ({verdict} the gate {values['gate']:.1%})")
    if not figures:
        print("no reduced-precision path to measure (no int8 file, no bf16 CPU, no OpenVINO)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
