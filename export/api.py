"""`export_model`: checkpoint -> model directory, with parity gates.

Everything is written into a build folder beside `out_dir` (config.json records the sha256
of each model file); once every gate passed, the folder replaces `out_dir` whole
(`zoo.modeldir.replace_dir`), so readers see the previous directory or the new one, never a
mix, and a failed or killed export leaves the previous one (the next export cleans up).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from export.checkpoint import build_for_export, load_checkpoint, save_weights, verify_weights
from export.fp16 import convert_fp16
from export.images import CALIB_LIMIT, CalibrationSet, load_calibration_set
from export.install import NOT_CARRIED, carry_over, default_permissions
from export.onnx_check import check_onnx_file
from export.onnx_export import Head, check_opset, export_onnx
from export.parity import (
    DEFAULT_SHAPES,
    ParityGates,
    check_shapes,
    fp32_parity,
    gate_inputs,
    int8_parity,
)
from export.quantize import quantize_int8
from export.report import (
    REPORT_KEY,
    base_report,
    check_dynamic_axes,
    check_existing_metrics,
    file_figures,
    fp16_figures,
)
from export.steps import ExportSteps, Progress
from zoo.config import ModelConfig
from zoo.fileio import file_sha256, read_json_object, write_text_atomic
from zoo.modeldir import new_build_dir, record_files, recover_leftovers, replace_dir
from zoo.modelfiles import (
    CARD_NAME,
    CONFIG_NAME,
    EVAL_NAME,
    ONNX_FP16_NAME,
    ONNX_INT8_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
)

logger = logging.getLogger(__name__)

__all__ = ["NOT_CARRIED", "REPORT_KEY", "export_model"]


def export_model(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    int8: bool = False,
    calib_data: str | Path | None = None,
    calib_labels: str | Path | None = None,
    calib_size: tuple[int, int] | None = None,
    calib_limit: int = CALIB_LIMIT,
    int8_per_channel: bool = True,
    fp16: bool = False,
    head: Head = "logits",
    opset: int = 18,
    shapes: tuple[tuple[int, int, int, int], ...] = DEFAULT_SHAPES,
    gates: ParityGates | None = None,
    command: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Export `checkpoint` into model directory `out_dir` and return `out_dir`.

    Writes config.json, model.safetensors, model.onnx (+ model.int8.onnx with `int8`,
    calibrated on `calib_data`, per-channel weight scales unless `int8_per_channel=False`;
    + model.fp16.onnx with `fp16`) and the "export" report in
    eval.json. `head` adds a `probs` or `labels` output beside `logits`. `shapes` are the
    parity-gate inputs; `calib_size` (H, W) defaults to the config's input size.
    `progress` receives a line per step (ONNX export, parity on shape k of n, int8
    calibration image i of n, ...).
    Raises `ParityError` (with figures) if a gate fails, `CheckpointError` / `ValueError`
    for bad inputs; in both cases the previous `out_dir` (or none) is left as it was.
    Other files of a previous `out_dir` are kept, except its model card (README.md, which
    described the old weights: it is dropped with a warning); the README.md of a folder that
    held no model (no config.json) is kept unless it is a cpg-zoo card.
    """
    gates = gates or ParityGates()
    check_opset(opset)
    check_shapes(shapes)
    if int8 and calib_data is None:
        raise ValueError("int8 export needs calibration images (calib_data / --calib-data DIR)")
    if calib_limit < 1:
        raise ValueError(f"calib_limit (--calib-limit) must be >= 1 image, got {calib_limit}")
    if calib_size is not None and min(calib_size) < 1:
        raise ValueError(
            f"calib_size (--calib-size) must be HxW with H, W >= 1, got {calib_size[0]}x"
            f"{calib_size[1]}"
        )
    out_dir = _check_out_dir(out_dir)
    steps = ExportSteps(progress)

    recover_leftovers(out_dir)  # of killed exports into out_dir, before reading it
    steps.start(f"reading {checkpoint}")
    loaded = load_checkpoint(checkpoint)
    checkpoint_sha = file_sha256(checkpoint) if Path(checkpoint).is_file() else None
    eval_path = out_dir / EVAL_NAME
    existing_eval = read_json_object(eval_path) if eval_path.is_file() else {}
    check_existing_metrics(existing_eval, eval_path, checkpoint, checkpoint_sha)
    config = loaded.config
    model = build_for_export(loaded)
    steps.done("load_checkpoint_s")

    calibration = None
    if calib_data is not None:
        steps.start(f"reading calibration images from {calib_data}")
        size = tuple(calib_size or config.input_size)
        calibration = load_calibration_set(
            calib_data, size, config.mean, config.std, limit=calib_limit, label_folder=calib_labels
        )
        if int8 and gates.int8_max_miou_drop is not None and calibration.labels is None:
            raise ValueError(
                "the int8 mIoU gate (--int8-max-miou-drop) needs a label for every calibration "
                f"image, and {calib_data} has none or not all (--calib-labels DIR, or labels/ "
                "beside images/: a label is the image's relative path as .png)"
            )
        steps.done("load_calibration_s")

    work = new_build_dir(out_dir)
    try:
        config.save(work)
        steps.start(f"writing {WEIGHTS_NAME}")
        save_weights(model, config, work / WEIGHTS_NAME)
        verify_weights(model, config, work / WEIGHTS_NAME)
        steps.done("safetensors_s")

        steps.start(f"ONNX export (opset {opset}) to {ONNX_NAME}")
        export_onnx(model, work / ONNX_NAME, config.num_classes, head=head, opset=opset)
        steps.done("onnx_export_s")
        session = check_onnx_file(work / ONNX_NAME)
        check_dynamic_axes(work / ONNX_NAME, config.num_classes)
        inputs = gate_inputs(shapes, config.mean, config.std, calibration)
        fp32 = fp32_parity(model, session, inputs, gates, head=head, progress=steps.progress)
        steps.done("fp32_parity_s")

        report = base_report(
            work,
            config,
            checkpoint=checkpoint,
            checkpoint_sha=checkpoint_sha,
            dropped_aux_keys=len(loaded.dropped_keys),
            command=command,
            opset=opset,
            head=head,
            session=session,
            gates=gates,
            calibration=calibration,
            calib_data=calib_data,
        )
        report["parity"]["fp32"] = fp32
        if int8:
            assert calibration is not None
            _export_int8(
                work, config, session, inputs, calibration, gates, int8_per_channel, report, steps
            )
        if fp16:
            steps.start(f"fp16 conversion to {ONNX_FP16_NAME}")
            convert_fp16(work / ONNX_NAME, work / ONNX_FP16_NAME)
            fp16_session = check_onnx_file(work / ONNX_FP16_NAME)
            report["parity"]["fp16"] = fp16_figures(session, fp16_session, inputs[-1])
            steps.done("fp16_s")

        record_files(work)
        _record_serving_agreement(
            work, existing_eval, calibration, calib_data, report["command"], steps
        )
        report["files"] = file_figures(work)
        report["timings"] = steps.total()
        existing_eval[REPORT_KEY] = report  # the "export" key replaced, every other key kept
        write_text_atomic(work / EVAL_NAME, json.dumps(existing_eval, indent=2) + "\n")
        default_permissions(work)
        carry_over(out_dir, work)
        steps.start(f"{'replacing' if out_dir.exists() else 'writing'} {out_dir}")
        replace_dir(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out_dir


def _check_out_dir(out_dir: str | Path) -> Path:
    """`out_dir` (a link: the directory it points to) if a model directory can be put there;
    else ValueError / NotADirectoryError saying why."""
    if not str(out_dir):
        raise ValueError("the output model directory is empty ('')")
    path = Path(out_dir)
    if path.is_symlink():  # replace the directory it points to, keep the link
        path = path.resolve()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: exists and is not a directory")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise NotADirectoryError(f"{path}: {blocking} is a file, not a folder")
    if path.resolve() in (Path.cwd(), *Path.cwd().parents):
        raise ValueError(
            f"{out_dir} is the current folder (or holds it): the export replaces its output "
            "folder whole, so give it a folder of its own, e.g. --out models/NAME"
        )
    config = path / CONFIG_NAME
    if config.is_file() and not _is_model_config(config):
        raise ValueError(
            f"{config} is not a cpg-zoo model config, and the export would replace it (and "
            f"{EVAL_NAME}, {CARD_NAME}); give the model a folder of its own, e.g. --out "
            "models/NAME"
        )
    return path


def _is_model_config(path: Path) -> bool:
    """Whether `path` holds a model directory's config: a JSON object naming arch and classes
    (loosely, so that an export replaces one of an older version)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and {"arch", "classes"} <= data.keys()


def _export_int8(
    work: Path,
    config: ModelConfig,
    session: Any,
    inputs: list[np.ndarray],
    calibration: CalibrationSet,
    gates: ParityGates,
    per_channel: bool,
    report: dict[str, Any],
    steps: ExportSteps,
) -> None:
    """Quantise `work`'s model.onnx to model.int8.onnx and gate it against fp32 (into
    `report`)."""
    steps.start(f"int8 quantisation to {ONNX_INT8_NAME}")
    quantized = quantize_int8(
        work / ONNX_NAME,
        work / ONNX_INT8_NAME,
        calibration.images,
        per_channel=per_channel,
        progress=steps.progress,
    )
    steps.done("int8_quantize_s")
    int8_session = check_onnx_file(work / ONNX_INT8_NAME)
    report["parity"]["int8"] = int8_parity(
        session,
        int8_session,
        inputs,
        gates,
        calibration=calibration,
        num_classes=config.num_classes,
        ignore_index=config.ignore_index,
        progress=steps.progress,
    )
    report["int8"] = {
        "format": "QDQ",
        "activations": "uint8",
        "weights": "int8 per channel" if per_channel else "int8 per tensor",
        "calibration": "MinMax",
        **quantized.to_dict(),
    }
    steps.done("int8_parity_s")


def _record_serving_agreement(
    work: Path,
    existing_eval: dict[str, Any],
    calibration: CalibrationSet | None,
    calib_data: str | Path | None,
    command: str,
    steps: ExportSteps,
) -> None:
    """Measure the bf16 / int8 serving paths against fp32 on the calibration images into
    `existing_eval` (read by `zoo.selection`); figures of the previous weights are dropped."""
    from zoo.selection import AGREEMENT_KEY

    existing_eval.pop(AGREEMENT_KEY, None)
    if calibration is None or calib_data is None:
        return
    from export.precision_gates import agreement_on, agreement_record

    steps.start("precision gates: serving paths against fp32 on the calibration images")
    figures = agreement_on(work, calibration)
    existing_eval[AGREEMENT_KEY] = agreement_record(figures, calib_data, command)
    steps.done("precision_gates_s")
