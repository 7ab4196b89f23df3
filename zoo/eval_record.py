"""What a model directory's `eval.json` records, in the short forms that cards and the demo
show: the measured metrics, the export report in a few rows, a one-line description.

Strings from these records may hold paths of the machine that wrote them (checkpoints,
commands): `portable` removes them before anything is shown.
"""

from __future__ import annotations

import math
import re
from pathlib import Path, PureWindowsPath
from typing import Any

from zoo.fileio import read_json_object
from zoo.modelfiles import CONFIG_NAME, EVAL_NAME

# Card metric -> (display name, keys eval.json may use for it under "metrics"), in card order.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mIoU": ("mIoU", ("mIoU", "miou", "mean_iou")),
    "pixel_accuracy": ("pixel accuracy", ("pixel_accuracy", "pixel_acc", "aAcc")),
    "mean_accuracy": ("mean class accuracy", ("mean_accuracy", "mean_acc", "mAcc")),
    "boundary_f": ("boundary F", ("boundary_f", "mBF", "boundary_f_score")),
    "boundary_iou": ("boundary IoU", ("boundary_iou", "mBIoU")),
}


# -- eval.json ------------------------------------------------------------------------------
def read_eval(model_dir: str | Path) -> dict[str, Any] | None:
    """`eval.json` of a model directory, or None if absent; a malformed one is an error."""
    path = Path(model_dir) / EVAL_NAME
    return read_json_object(path) if path.is_file() else None


def number(value: Any) -> float | None:
    """`value` as a finite float; None for anything else (bools, strings, NaN, missing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def measured_metrics(eval_data: dict[str, Any] | None) -> dict[str, float]:
    """The card metrics `eval_data["metrics"]` holds as finite numbers (missing = not measured)."""
    metrics = (eval_data or {}).get("metrics")
    if not isinstance(metrics, dict):
        return {}
    found = {}
    for key, (_, aliases) in METRICS.items():
        for alias in aliases:
            value = number(metrics.get(alias))
            if value is not None:
                found[key] = value
                break
    return found


def percent(value: float) -> str:
    """A fraction (<= 1) or a percentage as a percentage with two decimals."""
    return f"{value * 100:.2f}" if value <= 1.0 else f"{value:.2f}"


Rows = list[tuple[str, str]]
# An absolute path of the machine that wrote a record (POSIX, home-relative or Windows).
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])(?:~|[A-Za-z]:)?[/\\][^\s\"'`|,;)]*")


def portable(text: str) -> str:
    """`text` without paths of the machine that wrote it: an absolute path under the current
    directory becomes relative, any other becomes `.../<file name>`."""

    def shorten(match: re.Match[str]) -> str:
        if "\\" in match.group(0):  # a Windows path
            return f".../{PureWindowsPath(match.group(0)).name}"
        path = Path(match.group(0)).expanduser()
        try:
            return path.resolve().relative_to(Path.cwd().resolve()).as_posix() or "."
        except (ValueError, OSError):
            return f".../{path.name}" if path.name else "..."

    return _ABSOLUTE_PATH.sub(shorten, text)


def dataset_title(dataset: str) -> str:
    from zoo.datasets import get_dataset_info

    try:
        return get_dataset_info(dataset).title
    except ValueError:  # a user's own dataset
        return dataset


def export_rows(export: Any) -> Rows:
    """The export report of eval.json (`export`) in a few rows: exporter, parity of each ONNX
    file, file sizes, library versions. Paths, dates and the machine are left out."""
    if not isinstance(export, dict) or not export:
        return []
    rows: Rows = []
    if export.get("exporter"):
        text = f"`{export['exporter']}`"
        if export.get("opset") is not None:
            text += f", opset {export['opset']}"
        rows.append(("exporter", text))
    parity = export.get("parity")
    parity = parity if isinstance(parity, dict) else {}
    labels = {
        "fp32": "fp32 ONNX vs torch",
        "int8": "int8 ONNX vs fp32",
        "fp16": "fp16 ONNX vs fp32",
    }
    for key, label in labels.items():
        if isinstance(parity.get(key), dict):
            rows.append((label, _parity_text(parity[key])))
    files = export.get("files")
    files = files if isinstance(files, dict) else {}
    sizes = [
        f"`{name}` {bytes_ / 1e6:.1f} MB"
        for name, record in files.items()
        if name != CONFIG_NAME
        and isinstance(record, dict)
        and (bytes_ := number(record.get("bytes"))) is not None
    ]
    if sizes:
        rows.append(("files", ", ".join(sizes)))
    versions = export.get("versions")
    if isinstance(versions, dict) and versions:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    return rows


def _parity_text(figures: dict[str, Any]) -> str:
    """One parity record (fp32 cases, int8 or fp16 figures) as one line."""
    cases = figures.get("cases")
    cases = cases if isinstance(cases, list) else [figures]
    found_diffs = [number(c.get("max_abs_diff")) for c in cases if isinstance(c, dict)]
    diffs = [diff for diff in found_diffs if diff is not None]
    parts = []
    if diffs:
        parts.append(f"max abs logit diff {max(diffs):.2g}")
    agreement = number(figures.get("argmax_agreement"))
    if agreement is None:
        found = [number(c.get("argmax_agreement")) for c in cases if isinstance(c, dict)]
        agreement = min((a for a in found if a is not None), default=None)
    if agreement is not None:
        parts.append(f"argmax agreement {agreement * 100:.2f} %")
    if len(cases) > 1:
        parts.append(f"{len(cases)} inputs")
    fp32_miou, int8_miou = number(figures.get("miou_fp32")), number(figures.get("miou_int8"))
    if fp32_miou is not None and int8_miou is not None:
        parts.append(f"mIoU {percent(fp32_miou)} -> {percent(int8_miou)} %")
    verdict = {True: "passed", False: "failed"}.get(figures.get("passed"), "")  # type: ignore[arg-type]
    text = ", ".join(parts) or "no figures"
    return f"{verdict}: {text}" if verdict else text


def describe_model(segmenter: Any) -> str:
    """One line on what a loaded model (`Segmenter`) is and was trained on, from its
    config.json and eval.json (the demo's "About")."""
    config = segmenter.config
    text = (
        f"`{config.arch}` trained on **{dataset_title(config.dataset)}** with the "
        f"`{config.loss.get('name')}` loss"
    )
    try:
        evaluation = read_eval(segmenter.model_dir) if segmenter.model_dir else None
    except (OSError, ValueError):
        evaluation = None
    if (miou := measured_metrics(evaluation).get("mIoU")) is not None:
        split = (evaluation or {}).get("split", "?")
        text += f"; {split} mIoU {100 * miou if miou <= 1 else miou:.1f}% (its eval.json)"
    build = (evaluation or {}).get("build")
    if isinstance(build, dict) and isinstance(build.get("description"), str):
        text += f". {build['description'].strip().rstrip('.')}"
    return text + "."
