"""`zoo eval --plot FILE.png`: the confusion matrix of an evaluation (rows normalised: the
share of each ground-truth class predicted as each class) beside per-class IoU and boundary F
bars, drawn with matplotlib (the `plot` extra).

    python -m training.eval_plot eval.json plot.png   # from an eval.json written before
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_eval", "require_matplotlib"]

INSTALL_HINT = "pip install 'cpg-zoo[plot]'"


def require_matplotlib() -> None:
    """ImportError with the install command when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            f"--plot draws with matplotlib, which this install lacks: {INSTALL_HINT}"
        ) from None


def _checked(result: dict[str, Any], source: str) -> tuple[list[str], np.ndarray]:
    metrics = result.get("metrics")
    if not isinstance(metrics, dict) or "confusion_matrix" not in metrics:
        raise ValueError(
            f"{source} has no metrics.confusion_matrix: evaluate with this version of zoo eval"
        )
    classes = list(metrics.get("classes") or [])
    matrix = np.asarray(metrics["confusion_matrix"], dtype=np.float64)
    n = len(classes)
    if matrix.shape != (n, n):
        raise ValueError(f"{source}: confusion matrix of shape {matrix.shape} for {n} class names")
    return classes, matrix


def plot_eval(result: dict[str, Any], path: str | Path, source: str = "the result") -> Path:
    """Draw `result` (eval.json content) into the PNG `path` (written atomically)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    classes, matrix = _checked(result, source)
    metrics = result["metrics"]
    n = len(classes)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    side = min(4 + 0.35 * n, 40)
    figure = Figure(figsize=(2 * side + 2, side), layout="constrained")
    FigureCanvasAgg(figure)
    matrix_axes, bar_axes = figure.subplots(1, 2, width_ratios=(1.1, 1))
    image = matrix_axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=matrix_axes, shrink=0.8, label="share of the ground-truth class")
    ticks = np.arange(n)
    font = max(4, 10 - n // 20)
    matrix_axes.set_xticks(ticks, classes, rotation=90, fontsize=font)
    matrix_axes.set_yticks(ticks, classes, fontsize=font)
    matrix_axes.set_xlabel("predicted")
    matrix_axes.set_ylabel("ground truth")
    matrix_axes.set_title("confusion matrix (rows normalised)")
    if n <= 25:
        for row in range(n):
            for col in range(n):
                if matrix[row, col]:
                    colour = "white" if shares[row, col] > 0.5 else "black"
                    text = f"{100 * shares[row, col]:.0f}"
                    matrix_axes.text(col, row, text, ha="center", va="center", color=colour,
                                     fontsize=font)  # fmt: skip
    bars = {"IoU": metrics.get("per_class_iou")}
    if metrics.get("per_class_bf") is not None:
        bars[f"boundary F@{metrics.get('boundary_tolerance_px')}px"] = metrics["per_class_bf"]
    height = 0.8 / len(bars)
    for offset, (label, values) in enumerate(bars.items()):
        scores = [np.nan if v is None else 100 * v for v in values]
        bar_axes.barh(ticks + (offset - (len(bars) - 1) / 2) * height, scores, height,
                      label=label)  # fmt: skip
    bar_axes.set_yticks(ticks, classes, fontsize=font)
    bar_axes.invert_yaxis()
    bar_axes.set_xlim(0, 100)
    bar_axes.set_xlabel("%")
    bar_axes.legend(loc="lower right")
    title = f"{result.get('model_id') or result.get('arch', '')} on {result.get('dataset', '?')}"
    bar_axes.set_title(f"{title} {result.get('split', '')}: mIoU {100 * metrics['mIoU']:.2f} %")
    return _save(figure, Path(path))


def _save(figure: Any, path: Path) -> Path:
    """`figure.savefig` into memory, then `zoo.fileio.write_bytes_atomic` (the one atomic
    writer: temp file + rename, the umask's usual mode)."""
    from zoo.fileio import write_bytes_atomic

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m training.eval_plot EVAL_JSON OUT_PNG`."""
    from zoo.cli_errors import USER_ERRORS, fail
    from zoo.fileio import read_json_object

    parser = argparse.ArgumentParser(prog="python -m training.eval_plot", description=__doc__)
    parser.add_argument("eval_json", help="an eval.json written by zoo eval")
    parser.add_argument("png", help="the image to write")
    args = parser.parse_args(argv)
    try:
        path = plot_eval(read_json_object(args.eval_json), args.png, source=args.eval_json)
    except USER_ERRORS as error:
        return fail("eval_plot", error, code=2)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
