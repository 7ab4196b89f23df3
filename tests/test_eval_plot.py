"""`zoo eval --plot`: the PNG is written through the project's one atomic writer."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from training.eval_plot import plot_eval

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RESULT = {
    "model_id": "tiny",
    "dataset": "toy",
    "split": "val",
    "metrics": {
        "mIoU": 0.5,
        "classes": ["sky", "road"],
        "confusion_matrix": [[3, 1], [0, 4]],
        "per_class_iou": [0.75, 0.8],
    },
}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_plot_mode_follows_the_umask_like_other_outputs(tmp_path: Path) -> None:
    """It was 0600 (mkstemp's mode) where a file opened the ordinary way gets the umask's."""
    reference = tmp_path / "reference.txt"
    reference.write_bytes(b"")  # what open() gives a new file under this umask
    path = plot_eval(RESULT, tmp_path / "plots" / "cm.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert oct(_mode(path)) == oct(_mode(reference))


def test_a_failed_draw_keeps_the_old_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A savefig that fails leaves the previous image whole and no temp file beside it."""
    from matplotlib.figure import Figure

    path = tmp_path / "cm.png"
    path.write_bytes(b"the previous plot")

    def broken_savefig(self: Figure, *args: object, **kwargs: object) -> None:
        raise RuntimeError("injected savefig failure")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="injected savefig failure"):
        plot_eval(RESULT, path)
    assert path.read_bytes() == b"the previous plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png"]
