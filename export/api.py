"""`export_model`: checkpoint -> model directory, with parity gates.

Everything is written into a build folder beside `out_dir` (config.json records the sha256
of each model file); once every gate passed, the folder replaces `out_dir` whole
(`zoo.modeldir.replace_dir`), so readers see the previous directory or the new one, never a
mix, and a failed or killed export leaves the previous one (the next export cleans up).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch

from export.checkpoint import build_for_export, load_checkpoint, save_weights, verify_weights
from export.fp16 import convert_fp16
from export.images import load_calibration_set
from export.onnx_check import check_onnx_file
from export.onnx_export import INPUT_NAME, LOGITS_NAME, Head, dynamic_dims, export_onnx
from export.parity import (
    DEFAULT_SHAPES,
    ParityError,
    ParityGates,
    fp32_parity,
    gate_inputs,
    int8_parity,
    ort_outputs,
)
from export.quantize import quantize_int8
from zoo.fileio import default_file_mode, file_sha256, read_json_object, write_text_atomic
from zoo.modeldir import new_build_dir, record_files, recover_leftovers, replace_dir
from zoo.modelfiles import (
    CARD_NAME,
    CONFIG_NAME,
    EVAL_NAME,
    MODEL_FILES,
    ONNX_FP16_NAME,
    ONNX_INT8_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
)

logger = logging.getLogger(__name__)

REPORT_KEY = "export"
# Files of the previous directory that a new export does not carry over: its own outputs (a
# model file it did not write this time belonged to the old weights), the card (it describes
# the old weights: `zoo card` / `zoo push` write a new one) and temp files of killed writers.
NOT_CARRIED = (CONFIG_NAME, EVAL_NAME, CARD_NAME, *MODEL_FILES)


def export_model(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    int8: bool = False,
    calib_data: str | Path | None = None,
    calib_labels: str | Path | None = None,
    calib_size: tuple[int, int] | None = None,
    calib_limit: int = 16,
    int8_per_channel: bool = True,
    fp16: bool = False,
    head: Head = "logits",
    opset: int = 18,
    shapes: tuple[tuple[int, int, int, int], ...] = DEFAULT_SHAPES,
    gates: ParityGates | None = None,
    command: str | None = None,
) -> Path:
    """Export `checkpoint` into model directory `out_dir` and return `out_dir`.

    Writes config.json, model.safetensors, model.onnx (+ model.int8.onnx with `int8`,
    calibrated on `calib_data`, per-channel weight scales unless `int8_per_channel=False`;
    + model.fp16.onnx with `fp16`) and the "export" report in
    eval.json. `head` adds a `probs` or `labels` output beside `logits`. `shapes` are the
    parity-gate inputs; `calib_size` (H, W) defaults to the config's input size.
    Raises `ParityError` (with figures) if a gate fails, `CheckpointError` / `ValueError`
    for bad inputs; in both cases the previous `out_dir` (or none) is left as it was.
    Other files of a previous `out_dir` are kept, except its model card (README.md, which
    described the old weights: it is dropped with a warning).
    """
    gates = gates or ParityGates()
    if int8 and calib_data is None:
        raise ValueError("int8 export needs calibration images (calib_data / --calib-data DIR)")
    out_dir = Path(out_dir)
    if out_dir.is_symlink():  # replace the directory it points to, keep the link
        out_dir = out_dir.resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir}: exists and is not a directory")
    timings: dict[str, float] = {}
    start = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    recover_leftovers(out_dir)  # of killed exports into out_dir, before reading it
    loaded = load_checkpoint(checkpoint)
    checkpoint_sha = file_sha256(checkpoint) if Path(checkpoint).is_file() else None
    eval_path = out_dir / EVAL_NAME
    existing_eval = read_json_object(eval_path) if eval_path.is_file() else {}
    _check_existing_metrics(existing_eval, eval_path, checkpoint, checkpoint_sha)
    config = loaded.config
    model = build_for_export(loaded)
    lap("load_checkpoint_s")

    calibration = None
    if calib_data is not None:
        size = tuple(calib_size or config.input_size)
        calibration = load_calibration_set(
            calib_data, size, config.mean, config.std, limit=calib_limit, label_folder=calib_labels
        )
        lap("load_calibration_s")

    work = new_build_dir(out_dir)
    try:
        config.save(work)
        save_weights(model, config, work / WEIGHTS_NAME)
        verify_weights(model, config, work / WEIGHTS_NAME)
        lap("safetensors_s")

        export_onnx(model, work / ONNX_NAME, config.num_classes, head=head, opset=opset)
        lap("onnx_export_s")
        session = check_onnx_file(work / ONNX_NAME)
        _check_dynamic_axes(work / ONNX_NAME, config.num_classes)
        inputs = gate_inputs(shapes, config.mean, config.std, calibration)
        fp32 = fp32_parity(model, session, inputs, gates, head=head)
        lap("fp32_parity_s")

        report: dict[str, Any] = {
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": checkpoint_sha,
            "dropped_aux_keys": len(loaded.dropped_keys),
            "model_id": config.model_id,
            "arch": config.arch,
            "num_classes": config.num_classes,
            "source_commit": config.source_commit,
            "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": {
                "torch": torch.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
                "python": platform.python_version(),
            },
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "exporter": "torch.onnx.export(dynamo=False)",
            "opset": opset,
            "ir_version": onnx.load(str(work / ONNX_NAME), load_external_data=False).ir_version,
            "head": head,
            "input": {"name": INPUT_NAME, "layout": "NCHW float32, (x/255 - mean) / std"},
            "outputs": [output.name for output in session.get_outputs()],
            "dims": dynamic_dims(work / ONNX_NAME),
            "gate_inputs": "calibration images" if calibration else "synthetic smooth images",
            "gates": gates.to_dict(),
            "parity": {"fp32": fp32},
        }
        if calibration is not None:
            report["calibration"] = {
                "folder": str(Path(calib_data).resolve()),
                "images": len(calibration.images),
                "size": list(calibration.images[0].shape[2:]),
                "labels": calibration.labels is not None,
            }

        if int8:
            assert calibration is not None
            quantized = quantize_int8(
                work / ONNX_NAME,
                work / ONNX_INT8_NAME,
                calibration.images,
                per_channel=int8_per_channel,
            )
            lap("int8_quantize_s")
            int8_session = check_onnx_file(work / ONNX_INT8_NAME)
            report["parity"]["int8"] = int8_parity(
                session,
                int8_session,
                inputs,
                gates,
                calibration=calibration,
                num_classes=config.num_classes,
                ignore_index=config.ignore_index,
            )
            report["int8"] = {
                "format": "QDQ",
                "activations": "uint8",
                "weights": "int8 per channel" if int8_per_channel else "int8 per tensor",
                "calibration": "MinMax",
                **quantized.to_dict(),
            }
            lap("int8_parity_s")

        if fp16:
            convert_fp16(work / ONNX_NAME, work / ONNX_FP16_NAME)
            fp16_session = check_onnx_file(work / ONNX_FP16_NAME)
            report["parity"]["fp16"] = _fp16_figures(session, fp16_session, inputs[-1])
            lap("fp16_s")

        record_files(work)
        from zoo.selection import AGREEMENT_KEY

        existing_eval.pop(AGREEMENT_KEY, None)  # figures of the previous weights
        if calibration is not None:  # bf16 / int8 serving paths against fp32 (zoo.selection)
            from export.precision_gates import agreement_record, measure_agreement

            size = tuple(calibration.images[0].shape[2:])
            figures = measure_agreement(
                work, calib_data, calib_limit, size=size, label_folder=calib_labels
            )
            existing_eval[AGREEMENT_KEY] = agreement_record(figures, calib_data, report["command"])
            lap("precision_gates_s")
        report["files"] = {
            name: {"bytes": (work / name).stat().st_size, "sha256": file_sha256(work / name)}
            for name in (CONFIG_NAME, WEIGHTS_NAME, ONNX_NAME, ONNX_INT8_NAME, ONNX_FP16_NAME)
            if (work / name).is_file()
        }
        timings["total_s"] = round(time.perf_counter() - start, 3)
        report["timings"] = timings
        existing_eval[REPORT_KEY] = report  # the "export" key replaced, every other key kept
        write_text_atomic(work / EVAL_NAME, json.dumps(existing_eval, indent=2) + "\n")
        _default_permissions(work)
        _carry_over(out_dir, work)
        replace_dir(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out_dir


def _check_dynamic_axes(path: Path, num_classes: int) -> None:
    """Input N x 3 x H x W and logits N x C x H x W with named dynamic dims."""
    dims = dynamic_dims(path)
    expected = {
        INPUT_NAME: ["batch", 3, "height", "width"],
        LOGITS_NAME: ["batch", num_classes, "height", "width"],
    }
    if any(dims.get(name) != value for name, value in expected.items()):
        raise ParityError(f"{path}: dims are {dims}, expected {expected}", {"dims": dims})


def _fp16_figures(fp32_session: Any, fp16_session: Any, x: np.ndarray) -> dict[str, Any]:
    """fp16 vs fp32 on the CPU EP (report only: fp16 is meant for GPUs)."""
    reference = ort_outputs(fp32_session, x)[LOGITS_NAME]
    half = ort_outputs(fp16_session, x)[LOGITS_NAME]
    return {
        "input_shape": list(x.shape),
        "provider": "CPUExecutionProvider",
        "max_abs_diff": float(np.abs(reference - half).max()),
        "argmax_agreement": float((reference.argmax(1) == half.argmax(1)).mean()),
    }


def _check_existing_metrics(
    existing: dict[str, Any], eval_path: Path, checkpoint: str | Path, sha: str | None
) -> None:
    """Refuse to put new weights beside metrics that `zoo eval` measured on other weights."""
    measured = existing.get("checkpoint_sha256")
    if sha is not None and measured and measured != sha:
        raise ValueError(
            f"{eval_path} holds metrics of another checkpoint (sha256 {measured[:12]}..., "
            f"{checkpoint} is {sha[:12]}...): run `zoo eval {checkpoint} ... --out {eval_path}` "
            "first, or export into a new directory"
        )


def _default_permissions(work: Path) -> None:
    """mkdtemp / mkstemp create 0700 / 0600: give the model dir the umask's usual modes."""
    file_mode = default_file_mode()
    work.chmod(file_mode | ((file_mode & 0o444) >> 2))  # r -> rx for the directory
    for path in work.iterdir():
        path.chmod(file_mode)


def _carry_over(out_dir: Path, work: Path) -> None:
    """Hard-link (or copy) the files of the previous `out_dir` that export does not write
    into `work`."""
    if not out_dir.is_dir():
        return
    for path in sorted(out_dir.iterdir()):
        if path.name in NOT_CARRIED or (path.name.startswith(".") and path.name.endswith(".tmp")):
            if path.name == CARD_NAME:
                logger.warning(
                    "%s: dropped the model card, it described the previous weights; write one "
                    "for these with `zoo card %s` (`zoo push` writes one if missing)",
                    out_dir,
                    out_dir,
                )
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.copytree(path, work / path.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(path, work / path.name)


def _link_or_copy(source: str | Path, destination: str | Path) -> None:
    """A hard link (same file system, the old directory is deleted next), else a copy."""
    if Path(source).is_symlink():
        shutil.copy2(source, destination, follow_symlinks=False)
        return
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
