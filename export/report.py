"""The "export" report an export writes into eval.json: provenance (checkpoint, command,
versions, machine), the graph's interface, gates and parity figures, files and timings."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch

from export.images import CalibrationSet
from export.onnx_export import INPUT_NAME, LOGITS_NAME, dynamic_dims
from export.parity import ParityError, ParityGates, ort_outputs
from zoo.config import ModelConfig
from zoo.fileio import file_sha256
from zoo.modelfiles import CONFIG_NAME, MODEL_FILES, ONNX_NAME

REPORT_KEY = "export"  # the key of eval.json that holds the report


def base_report(
    work: Path,
    config: ModelConfig,
    *,
    checkpoint: str | Path,
    checkpoint_sha: str | None,
    dropped_aux_keys: int,
    command: str | None,
    opset: int,
    head: str,
    session: Any,
    gates: ParityGates,
    calibration: CalibrationSet | None,
    calib_data: str | Path | None,
) -> dict[str, Any]:
    """The report of the fp32 export in `work` (parity figures are added by the caller)."""
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": checkpoint_sha,
        "dropped_aux_keys": dropped_aux_keys,
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
        "parity": {},
    }
    if calibration is not None and calib_data is not None:
        report["calibration"] = {
            "folder": str(Path(calib_data).resolve()),
            "images": len(calibration.images),
            "size": list(calibration.images[0].shape[2:]),
            "labels": calibration.labels is not None,
        }
    return report


def file_figures(work: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of config.json and the model files in `work`."""
    return {
        name: {"bytes": (work / name).stat().st_size, "sha256": file_sha256(work / name)}
        for name in (CONFIG_NAME, *MODEL_FILES)
        if (work / name).is_file()
    }


def check_dynamic_axes(path: Path, num_classes: int) -> None:
    """Input N x 3 x H x W and logits N x C x H x W with named dynamic dims."""
    dims = dynamic_dims(path)
    expected = {
        INPUT_NAME: ["batch", 3, "height", "width"],
        LOGITS_NAME: ["batch", num_classes, "height", "width"],
    }
    if any(dims.get(name) != value for name, value in expected.items()):
        raise ParityError(f"{path}: dims are {dims}, expected {expected}", {"dims": dims})


def fp16_figures(fp32_session: Any, fp16_session: Any, x: np.ndarray) -> dict[str, Any]:
    """fp16 vs fp32 on the CPU EP (report only: fp16 is meant for GPUs)."""
    reference = ort_outputs(fp32_session, x)[LOGITS_NAME]
    half = ort_outputs(fp16_session, x)[LOGITS_NAME]
    return {
        "input_shape": list(x.shape),
        "provider": "CPUExecutionProvider",
        "max_abs_diff": float(np.abs(reference - half).max()),
        "argmax_agreement": float((reference.argmax(1) == half.argmax(1)).mean()),
    }


def check_existing_metrics(
    existing: dict[str, Any], eval_path: Path, checkpoint: str | Path, sha: str | None
) -> None:
    """Refuse to put new weights beside metrics that `zoo eval` measured on other weights:
    a checkpoint, or this directory's exported files (then the checkpoint they came from)."""
    measured = existing.get("checkpoint_sha256")
    export = existing.get(REPORT_KEY)
    if not measured and isinstance(export, dict) and existing.get("model_file_sha256"):
        exported = (export.get("files") or {}).get(existing.get("model_file"), {})
        if exported.get("sha256") == existing["model_file_sha256"]:
            measured = export.get("checkpoint_sha256")
    if sha is not None and measured and measured != sha:
        raise ValueError(
            f"{eval_path} holds metrics of another checkpoint (sha256 {measured[:12]}..., "
            f"{checkpoint} is {sha[:12]}...): run `zoo eval {checkpoint} ... --out {eval_path}` "
            "first, or export into a new directory"
        )
